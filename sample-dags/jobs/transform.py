"""Transform one table of the extracted batch (run once per withItems item)."""

import json
import sys

from kubedag_result import write_result

table, batch_text = sys.argv[1], sys.argv[2]
batch = json.loads(batch_text)
if table not in batch:
    sys.exit(f"the batch has no table {table!r}")
rows = batch[table]
print(f"transformed {rows} {table} rows of {batch['date']}")
write_result({"table": table, "rows": rows})
