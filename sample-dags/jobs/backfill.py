"""Re-process a customer's history for a number of days (a manual, parameterized job)."""

import argparse
import json

from kubedag_result import write_result

parser = argparse.ArgumentParser()
parser.add_argument("--customer", required=True)
parser.add_argument("--days", type=int, required=True)
parser.add_argument("--dry-run", choices=("true", "false"), required=True)
parser.add_argument("--tables", required=True, help="JSON array of table names")
args = parser.parse_args()

tables = json.loads(args.tables)
action = "would re-process" if args.dry_run == "true" else "re-processed"
print(f"{action} {args.days} days of {', '.join(tables)} for {args.customer}")
write_result(
    {
        "customer": args.customer,
        "days": args.days,
        "tables": tables,
        "dryRun": args.dry_run == "true",
    }
)
