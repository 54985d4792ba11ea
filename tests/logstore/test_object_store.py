"""Task logs in an S3 object store, for real: moto's S3 server on loopback.

The log store reaches object stores through fsspec and the `s3` extra (s3fs); these
tests write and read logs through a real S3 API, and read one back with `kubedag logs`
from a config whose logStore is an s3:// URL, as a deployment without a shared volume
would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import fsspec
import pytest

from controller.base.states import TaskState
from controller.base.tries import TryKey
from controller.logstore import LogKey, LogStore
from controller.store import NewTaskInstance, Store, upgrade
from tests.engine.support import dag, task
from tests.fixtures.ports import unused_port
from tests.runtime.support import queue_run, store_dag

BUCKET = "kubedag-logs"


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's S3 server, answering on loopback until the module's tests are done."""
    port = unused_port()
    log = (tmp_path_factory.mktemp("moto") / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2):  # noqa: S310
                break
        except OSError:
            assert server.poll() is None, "moto's server exited at start"
            assert time.monotonic() < deadline, "moto's server did not answer within 30s"
            time.sleep(0.2)
    try:
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment that points S3 clients (here and in subprocesses) at the server."""
    env = {
        "AWS_ENDPOINT_URL_S3": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "kubedag-test",
        "AWS_SECRET_ACCESS_KEY": "kubedag-test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    fs, _ = fsspec.core.url_to_fs(f"s3://{BUCKET}", skip_instance_cache=True)
    if not fs.exists(BUCKET):
        fs.mkdir(BUCKET)
    return env


def key(container: str = "task", *, try_number: int = 1) -> LogKey:
    return LogKey(TryKey(7, "load", 2, try_number), container)


def test_logs_are_stored_read_replaced_and_listed_in_s3(s3_env: dict[str, str]) -> None:
    store = LogStore(f"s3://{BUCKET}/store-{time.monotonic_ns()}")
    assert store.read(key()) is None
    store.write(key(), "first\n")
    store.write(key(), "second\n")
    store.write(key("git-checkout"), "cloned\n")
    store.write(key(try_number=2), "retry\n")
    assert store.read(key()) == "second\n"
    assert store.containers(TryKey(7, "load", 2, 1)) == [
        "git-checkout",
        "task",
    ]
    assert store.read(key(try_number=2)) == "retry\n"


def test_kubedag_logs_reads_a_finished_try_from_an_s3_log_store(
    s3_env: dict[str, str], tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'kubedag.db'}"
    upgrade(url)
    store = Store.connect(url)
    try:
        the_dag = dag(task("load"), name="s3-logs")
        store_dag(store, the_dag)
        run = queue_run(store, the_dag)
        with store.transaction() as uow:
            uow.add_task_instances(
                [
                    NewTaskInstance(
                        run_id=run.id,
                        task_name="load",
                        state=TaskState.SUCCEEDED,
                        finished_at=datetime.now(UTC),
                    )
                ]
            )
    finally:
        store.close()
    location = f"s3://{BUCKET}/cli-{time.monotonic_ns()}"
    LogStore(location).write(
        LogKey(TryKey(run.id, "load", 0, 1), "task"),
        "loaded 42 rows\n",
    )
    config = tmp_path / "config.yaml"
    config.write_text(f"databaseUrl: {url}\nlogStore: {location}\n")
    shown = subprocess.run(
        [sys.executable, "-m", "controller", "logs", str(run.id), "load", "--config", str(config)],
        env={**os.environ, **s3_env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (shown.returncode, shown.stdout) == (0, "loaded 42 rows\n"), shown.stderr
