"""A controller process for benchmarks: the engine and the Kubernetes executor, nothing else.

Run as ``python -m benchmarks.engine_process --database-url URL --namespace NS
--kubeconfig PATH [--pod-template FILE] [--parallelism N]``; it prints ``started <unix
time Engine.start was called> <seconds it took>`` once the engine runs (and, on
PostgreSQL, listens), then runs until stdin closes or it is killed. Benchmarks run it
apart from themselves so that its threads do not share an interpreter lock with the
benchmark's own watch and clock, and so they can SIGKILL it as a crashed controller.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

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
    return 0


if __name__ == "__main__":
    sys.exit(main())
