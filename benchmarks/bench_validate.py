"""Benchmark: validate 1,000 generated DAG files of 20 tasks each in one process.

The controller re-validates the whole repository on every git-sync and the pre-commit
hook runs on every commit, so validation must stay fast as repositories grow. The
target on a 2-core machine is the 1,000 files in under 2 seconds, which needs the
schema compiled once (never re-read per file) and libyaml for composing. CPU time is
printed beside wall time because on a shared machine the two differ. Three figures, in
one process holding the modules a started controller holds: as `kubedag validate` runs
it (the garbage collector paused: the command does nothing else), the baseline; with
the collector running as Python sets it up; and as the controller runs it (the
collector running, for the sake of its other threads, tuned at startup as
controller/process/collection.py explains), which should match the baseline.

Run: .venv/bin/python -m benchmarks.bench_validate [--files N] [--tasks N]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import controller.cli
import controller.process.controller
from controller.cli.validate import collector_paused
from controller.process.collection import tune_garbage_collection
from controller.spec.validate import validate_paths

# The controller's modules are loaded above for their objects: a full collection
# traverses them all, so they weigh on validation as they do in the controller.
CONTROLLER_MODULES = (controller.cli, controller.process.controller)

DAG_HEADER = """\
apiVersion: kubedag.io/v1
kind: DAG
metadata:
  name: bench-{index}
  labels: {{team: bench, shard: "{shard}"}}
  description: Generated DAG number {index}
spec:
  schedule: "{minute} {hour} * * *"
  timezone: Europe/Berlin
  startDate: "2026-01-01"
  params:
    region: {{type: string, default: eu, enum: [eu, us]}}
    days: {{type: integer, default: 7}}
  defaults:
    image: python:3.12-slim
    retries: {{limit: 2, backoff: {{delay: 30s, factor: 2, maxDelay: 10m}}}}
    timeout: 1h
    resources: {{requests: {{cpu: 100m, memory: 128Mi}}, limits: {{memory: 512Mi}}}}
    env: [{{name: STAGE, value: prod}}]
  tasks:
"""

TASK = """\
    - name: task-{number}
      command: [python3, jobs/step.py, "{{{{ run.logicalDate }}}}", "{{{{ params.region }}}}"]
      args: [--days, "{{{{ params.days }}}}"{upstream_args}]
      env: [{{name: STEP, value: "{number}"}}]
{depends}{items}"""


def dag_text(index: int, tasks: int, rng: random.Random) -> str:
    text = DAG_HEADER.format(
        index=index, shard=index % 10, minute=rng.randrange(60), hour=rng.randrange(24)
    )
    for number in range(tasks):
        upstream = rng.sample(range(number), k=min(number, 2))
        depends = (
            "      dependsOn: [" + ", ".join(f"task-{u}" for u in upstream) + "]\n"
            if upstream
            else ""
        )
        upstream_args = "".join(f', "{{{{ tasks.task-{u}.result }}}}"' for u in upstream)
        items = "      withItems: [a, b, c]\n" if number % 5 == 4 else ""
        text += TASK.format(
            number=number, depends=depends, items=items, upstream_args=upstream_args
        )
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=20)
    args = parser.parse_args()
    rng = random.Random(1)
    with tempfile.TemporaryDirectory(prefix="kubedag-bench-") as directory:
        root = Path(directory)
        for index in range(args.files):
            (root / f"dag-{index:04d}.yaml").write_text(dag_text(index, args.tasks, rng))
        with collector_paused():
            _measure("as kubedag validate runs it (collector paused): the baseline", root)
        _measure("collector running as Python sets it up", root)
        tune_garbage_collection()
        _measure("as the controller runs it (collector running, tuned at startup)", root)


def _measure(how: str, root: Path) -> None:
    started, cpu_started = time.perf_counter(), time.process_time()
    report = validate_paths([root], root=root)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    if not report.ok:
        raise SystemExit(
            "generated DAGs failed validation:\n" + "\n".join(map(str, report.problems[:10]))
        )
    print(
        f"validated {report.files_checked} files ({report.task_count} tasks) in {elapsed:.2f} s "
        f"({cpu:.2f} s CPU): {report.files_checked / elapsed:.0f} files/s, {how}"
    )


if __name__ == "__main__":
    main()
