"""Load: receive the fan-out's results (a JSON array in item order) and report totals."""

import json
import sys

from kubedag_result import write_result

tables = json.loads(sys.argv[1])
if not isinstance(tables, list) or not tables:
    sys.exit(f"expected a non-empty JSON array of table results, got {sys.argv[1]!r}")
total = sum(table["rows"] for table in tables)
print("loaded " + ", ".join(f"{t['table']}={t['rows']}" for t in tables))
write_result(f"loaded {total} rows into the warehouse")
