"""Hourly report: collect (deterministic) service metrics, then render a summary line."""

import json
import sys
import zlib

from kubedag_result import write_result

SERVICES = ("checkout", "search", "payments")

if sys.argv[1] == "collect":
    hour = sys.argv[2]
    metrics = {
        service: {
            "requests": 1000 + zlib.crc32(f"{hour}{service}".encode()) % 9000,
            "errors": zlib.crc32(f"{service}{hour}".encode()) % 25,
        }
        for service in SERVICES
    }
    write_result(metrics)
elif sys.argv[1] == "render":
    hour, metrics = sys.argv[2], json.loads(sys.argv[3])
    worst = max(metrics, key=lambda s: metrics[s]["errors"] / metrics[s]["requests"])
    total = sum(m["requests"] for m in metrics.values())
    write_result(f"{hour}: {total} requests; highest error rate: {worst}")
else:
    sys.exit(f"unknown step {sys.argv[1]!r}")
