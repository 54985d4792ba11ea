"""What operators do to DAGs and runs, one function per action, for the CLI and the HTTP API.

Both faces call these and nothing else, so `kubedag cancel 7` and `POST /api/v1/runs/7/
cancel` check the same things, refuse with the same words and write the same rows.
Actions on runs are queued as requests for the engine (see `controller.runtime.actions`);
pausing, backfilling and retention write the store directly.
"""
