"""Small steps of the failure-handling sample: one of them fails on purpose.

`fail` always exits 1 with a message, so the DAG's failure branch is exercised
deterministically; the others succeed and say what they did.
"""

import sys

from kubedag_result import write_result

step = sys.argv[1]
if step == "fetch":
    write_result("fetched 3 partner files")
elif step == "fail":
    print("partner file partner-b.csv has 7 columns, expected 8", file=sys.stderr)
    sys.exit(1)
elif step == "notify":
    write_result(f"alert sent: import of {sys.argv[2]} failed")
elif step == "cleanup":
    write_result("removed staging files")
elif step == "publish":
    write_result("published partner data")
else:
    sys.exit(f"unknown step {step!r}")
