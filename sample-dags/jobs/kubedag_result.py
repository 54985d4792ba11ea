"""Write a task's result where kubedag reads it: the container's termination message.

kubedag takes a task's result from its termination message file: the path in
$KUBEDAG_RESULT_PATH when set, else /dev/termination-log. Kubernetes keeps at most
4096 bytes of it, so results are small summaries, not data.
"""

import json
import os
import sys

LIMIT = 4096


def write_result(value):
    """Write `value` (a string as is, anything else as JSON) as this task's result."""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    data = text.encode("utf-8")
    if len(data) > LIMIT:
        sys.exit(f"result is {len(data)} bytes; Kubernetes keeps at most {LIMIT}")
    path = os.environ.get("KUBEDAG_RESULT_PATH", "/dev/termination-log")
    with open(path, "wb") as handle:
        handle.write(data)
    print(f"result: {text}")
