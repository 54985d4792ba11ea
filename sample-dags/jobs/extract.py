"""Extract: pretend to pull a day of orders from a source system and stage them."""

import argparse
import hashlib

from kubedag_result import write_result

parser = argparse.ArgumentParser()
parser.add_argument("--date", required=True)
parser.add_argument("--region", required=True)
args = parser.parse_args()

# Deterministic "data": the same date and region always give the same numbers.
seed = int(hashlib.sha256(f"{args.date}/{args.region}".encode()).hexdigest()[:8], 16)
batch = {"date": args.date, "region": args.region, "orders": 100 + seed % 900, "refunds": seed % 40}
print(f"extracted {batch['orders']} orders and {batch['refunds']} refunds for {args.region}")
write_result(batch)
