"""A controller process for benchmarks: the engine and the Kubernetes executor, nothing else.

Run as ``python -m benchmarks.engine_process --database-url URL --namespace NS
--kubeconfig PATH [--pod-template FILE] [--parallelism N] [--trace FILE]``; it prints
``started <unix time Engine.start was called> <seconds it took>`` once the engine runs
(and, on PostgreSQL, listens), then runs until stdin closes or it is killed. Benchmarks
run it apart from themselves so that its threads do not share an interpreter lock with
the benchmark's own watch and clock, and so they can SIGKILL it as a crashed controller.

``--trace FILE`` appends, one JSON line each, when the path from a queued run to its
first pod passed each step: a wake-up by the listener (``notified``), the end of the
step that started runs (``started``, with their ids), the hand-over of orders to the
executor (``handed``), and each pod create sent and answered (``post``, ``posted``),
as Unix times, so the trigger benchmark can say where a run's time went.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import IO, Any

import controller.executor.launcher as launcher_module
from controller.engine.seam import LaunchOrder
from controller.executor.kubeclient import make_api_client
from controller.executor.kubernetes import KubernetesExecutor, settings_from_config
from controller.logstore import LogStore
from controller.runtime.engine import Engine
from controller.settings.loading import load_config
from controller.store import Store

LISTEN_TIMEOUT_SECONDS = 30.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--log-store", default="/tmp/kubedag-bench-logs")
    parser.add_argument("--pod-template", help="executor.podTemplateFile")
    parser.add_argument("--parallelism", type=int, help="executor.parallelism")
    parser.add_argument("--trace", help="append when each run passed each step to this file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    overrides: dict[str, object] = {"executor.namespaces": [args.namespace]}
    if args.pod_template:
        overrides["executor.podTemplateFile"] = args.pod_template
    if args.parallelism:
        overrides["executor.parallelism"] = args.parallelism
    config = load_config(environ={}, overrides=overrides)
    store = Store.connect(args.database_url)
    settings = settings_from_config(config, repo_url="file:///bench", dags_path="")
    api = make_api_client(kubeconfig=args.kubeconfig, pool_maxsize=max(32, settings.workers))
    executor = KubernetesExecutor(api, store, settings=settings, log_store=LogStore(args.log_store))
    engine = Engine(store, executor, parallelism=config.executor.parallelism)
    trace_file = None
    if args.trace:
        trace_file = open(args.trace, "a", buffering=1)  # noqa: SIM115 - open until exit
        traced(engine, executor, Tracer(trace_file))
    called = time.time()
    began = time.monotonic()
    engine.start()
    took = time.monotonic() - began
    if engine.listener is not None and not engine.listener.listening.wait(LISTEN_TIMEOUT_SECONDS):
        print("the engine's listener did not listen", file=sys.stderr, flush=True)
        return 1
    print(f"started {called:.6f} {took:.6f}", flush=True)
    try:
        sys.stdin.read()
    finally:
        engine.stop()
        api.close()  # type: ignore[no-untyped-call]
        store.close()
        if trace_file is not None:
            trace_file.close()
    return 0


class Tracer:
    """Appends one JSON line per event, stamped with the Unix time."""

    def __init__(self, out: IO[str]) -> None:
        self._out = out
        self._lock = threading.Lock()

    def __call__(self, event: str, **fields: Any) -> None:
        line = json.dumps({"event": event, "t": time.time(), **fields})
        with self._lock:
            self._out.write(line + "\n")


def traced(engine: Engine, executor: KubernetesExecutor, trace: Tracer) -> None:
    """Wrap the steps on a queued run's path to its first pod with trace events."""
    notified = engine._notified

    def on_notified(what: frozenset[str]) -> None:
        trace("notified")
        notified(what)

    start_queued = engine._tracker.start_queued

    def on_start_queued(now: datetime, *, woken: frozenset[int]) -> bool:
        before = set(engine._tracker.runs)
        began = time.time()
        progressed = start_queued(now, woken=woken)
        runs = sorted(set(engine._tracker.runs) - before)
        if runs:
            trace("started", runs=runs, began=began)
        return progressed

    launch = executor.launch

    def on_launch(orders: Sequence[LaunchOrder]) -> None:
        trace("handed", runs=sorted({order.key.run_id for order in orders if not order.relaunch}))
        launch(orders)

    post = launcher_module.post_json

    def on_post(api: Any, path: str, body: Mapping[str, Any], **kwargs: Any) -> Any:
        run = body["metadata"]["labels"].get("kubedag.io/run-id")
        trace("post", run=run)
        response = post(api, path, body, **kwargs)
        trace("posted", run=run)
        return response

    engine._notified = on_notified  # type: ignore[method-assign]
    engine._tracker.start_queued = on_start_queued  # type: ignore[method-assign]
    executor.launch = on_launch  # type: ignore[method-assign]
    launcher_module.post_json = on_post  # type: ignore[assignment]


if __name__ == "__main__":
    sys.exit(main())
