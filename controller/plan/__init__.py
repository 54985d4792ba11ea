"""`kubedag plan`: what merging a commit of DAG files will change, before it merges.

`compute` is the pure diff of two validated DAG sets (schedules, pauses, catchup runs,
task graphs, worker pods); `pods` renders the pod each task would get; `output` prints a
plan as text, JSON or markdown; `gitsource` reads a DAG set from a git repository at a
commit or from the working tree, validated exactly as the controller validates a sync.
"""
