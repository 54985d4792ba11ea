"""The partition-load sample: list the day's partitions, load one, sum the loads up.

`list` returns a JSON array, which the DAG fans out over: one `load` pod per element.
"""

import json
import sys

from kubedag_result import write_result

step = sys.argv[1]
if step == "list":
    day = sys.argv[2][:10]
    write_result([{"table": table, "day": day} for table in ("orders", "refunds", "returns")])
elif step == "load":
    table, day = sys.argv[2], sys.argv[3]
    write_result({"table": table, "day": day, "rows": 100 * len(table)})
elif step == "summarize":
    loads = json.loads(sys.argv[2])
    rows = sum(load["rows"] for load in loads)
    tables = ", ".join(load["table"] for load in loads)
    write_result(f"loaded {rows} rows from {len(loads)} partitions ({tables})")
else:
    sys.exit(f"unknown step {step!r}")
