"""`kubedag logs --follow` as a user runs it, against tasks that really print over time.

The task prints one line, then waits until the test has read that line from the
follower before it prints the next; a follower that buffered instead of streaming would
stall the task, and the test would time out instead of passing by luck of timing.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO

import kubernetes.client
import pytest
import yaml

from controller.base.states import TaskState
from controller.base.tries import TryKey
from controller.cli import main
from controller.executor.podspec import RESULT_FINALIZER
from controller.executor.watchstream import list_pods
from controller.logstore import LogKey, LogStore
from controller.spec.model import Dag
from controller.store import Store, TaskInstanceRecord
from tests.e2e.harness import launched_run, task, wait_for
from tests.e2e.repo import Repository

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("node_agent")]

ROOT = Path(__file__).resolve().parents[2]
LINES = 3
LINE_TIMEOUT = 30.0
ACK_TIMEOUT = 60
HOLD = "kubedag.io/test-hold"
STRATEGIC_MERGE = "application/strategic-merge-patch+json"
MANAGED = "kubedag.io/managed-by=kubedag"

# Prints a line, then waits for the gate file that says the line was read. The second
# try of a retried task waits for `release` instead, so the test decides when it ends.
TALK = """\
import os, pathlib, sys, time

gate = pathlib.Path(sys.argv[1])
try_number = int(os.environ["KUBEDAG_TRY"])


def wait(name):
    deadline = time.monotonic() + ACK_TIMEOUT
    while not (gate / name).exists():
        if time.monotonic() > deadline:
            sys.exit(f"nobody created {gate / name}")
        time.sleep(0.05)


if sys.argv[2] == "stream":
    for number in range(LINES):
        print(f"line {number}", flush=True)
        wait(f"ack-{number}")
    print("done", flush=True)
elif try_number == 1:
    print("try 1 fails", flush=True)
    sys.exit(1)
else:
    print(f"try {try_number} waits", flush=True)
    wait("release")
""".replace("ACK_TIMEOUT", str(ACK_TIMEOUT)).replace("LINES", str(LINES))

DAG = """\
apiVersion: kubedag.io/v1
kind: DAG
metadata: {{name: {name}}}
spec:
  defaults: {{image: python:3.12-slim}}
  tasks:
    - name: talk
      command: [python3, talk.py, "{gate}", {mode}]
      retries: {{limit: 1, backoff: {{delay: 1s}}}}
"""


class LineReader:
    """A process's stdout, line by line, with a timeout on each line."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(process,), daemon=True)
        self._thread.start()

    def _pump(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def next(self, *, timeout: float = LINE_TIMEOUT) -> str | None:
        """The next line, or None at the end of the output."""
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output within {timeout}s") from None

    def rest(self) -> list[str]:
        """Every line left, once the output has ended."""
        left = []
        while (line := self.next()) is not None:
            left.append(line)
        return left


class Kubedag:
    """The `kubedag` command in processes of its own, as a user runs it."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[str]] = []

    def start(
        self,
        *args: str,
        stdout: IO[str] | int = subprocess.PIPE,
        stderr: IO[str] | int = subprocess.PIPE,
        env: Mapping[str, str] = os.environ,
    ) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "controller", *args],
            cwd=ROOT,
            env=dict(env),
            stdout=stdout,
            stderr=stderr,
            text=True,
        )
        self.started.append(process)
        return process


@pytest.fixture
def kubedag(
    controller_env: dict[str, str], kube: kubernetes.client.ApiClient, namespace: str
) -> Iterator[Kubedag]:
    """`kubedag` pointed at the test cluster and database; what still runs is killed after.

    With no controller left, nothing would remove the result finalizer of a pod that a
    killed `kubedag run` (or one that exited before its cleanup) left behind, and the
    namespace could never be deleted; it is removed here, as the controller would.
    """
    commands = Kubedag()
    yield commands
    for process in commands.started:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    core = kubernetes.client.CoreV1Api(kube)
    release = {"metadata": {"$deleteFromPrimitiveList/finalizers": [RESULT_FINALIZER]}}
    pods, _ = list_pods(kube, namespace=namespace, label_selector=MANAGED)
    for pod in pods:
        # A pod the cleaner has already released may be gone by the time it is patched.
        if RESULT_FINALIZER not in (pod["metadata"].get("finalizers") or ()):
            continue
        try:
            core.patch_namespaced_pod(
                pod["metadata"]["name"], namespace, release, _content_type=STRATEGIC_MERGE
            )
        except kubernetes.client.ApiException as error:
            if error.status != 404:
                raise


@pytest.fixture
def hold(kube: kubernetes.client.ApiClient) -> Iterator[Callable[[str, str], None]]:
    """Hold pods with a finalizer of the test's own, so they outlive the executor's delete.

    The node agent ends a log follow when the container's log is marked done; a pod the
    executor deletes within that instant takes the mark with it and leaves the stream
    open, so the follow would end only on its idle timeout. A kubelet ends it with the
    container; the hold makes the node agent do the same. Released when the test ends.
    """
    core = kubernetes.client.CoreV1Api(kube)
    held: list[tuple[str, str]] = []

    def add(namespace: str, pod: str) -> None:
        body = {"metadata": {"finalizers": [HOLD]}}
        core.patch_namespaced_pod(pod, namespace, body, _content_type=STRATEGIC_MERGE)
        held.append((namespace, pod))

    yield add
    release = {"metadata": {"$deleteFromPrimitiveList/finalizers": [HOLD]}}
    for namespace, pod in held:
        core.patch_namespaced_pod(pod, namespace, release, _content_type=STRATEGIC_MERGE)


@pytest.fixture
def gate(tmp_path: Path) -> Path:
    path = tmp_path / "gate"
    path.mkdir()
    return path


def try_in(store: Store, number: int, state: TaskState) -> TaskInstanceRecord | None:
    """Try ``number`` of the latest run's task, if it is in ``state``."""
    with store.transaction() as uow:
        runs = uow.list_runs(limit=1)
        rows = uow.list_task_instances(runs[0].id) if runs else []
    return next((r for r in rows if r.try_number == number and r.state is state), None)


class TalkRun:
    """`kubedag run --wait` of a one-task DAG running talk.py, watched through the store."""

    def __init__(
        self,
        mode: str,
        *,
        kubedag: Kubedag,
        repository: Repository,
        store: Store,
        gate: Path,
        log: Path,
    ) -> None:
        folder = repository.clone / mode
        folder.mkdir()
        (folder / "talk.py").write_text(TALK)
        (folder / "talk.yaml").write_text(DAG.format(name=f"talk-{mode}", gate=gate, mode=mode))
        repository.commit(f"talk {mode}")
        self._store = store
        self._log = log
        with log.open("w") as sink:
            self._process = kubedag.start(
                "run", "--wait", str(folder / "talk.yaml"), stdout=sink, stderr=sink
            )

    def wait_for_try(self, number: int, state: TaskState) -> TaskInstanceRecord:
        """Try ``number`` once it is in ``state``; fails at once if the run ended before."""

        def reached() -> TaskInstanceRecord | None:
            row = try_in(self._store, number, state)
            if row is None and self._process.poll() is not None:
                raise AssertionError(f"the run ended before try {number} was {state.value}")
            return row

        try:
            found: TaskInstanceRecord = wait_for(
                reached, timeout=60, what=f"try {number} to be {state.value}"
            )
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self._log.read_text()}") from None
        return found

    def succeeds(self) -> bool:
        return self._process.wait(60) == 0


def config_file_only(controller_env: dict[str, str], path: Path) -> dict[str, str]:
    """An environment without the cluster and database, which move into the file at ``path``.

    What a user keeps in `kubedag.yaml` instead of exporting, so `--config` alone must do.
    """
    config = yaml.safe_load(Path(controller_env["KUBEDAG_CONFIG"]).read_text())
    config["kubeconfig"] = controller_env["KUBECONFIG"]
    config["databaseUrl"] = controller_env["KUBEDAG_DATABASE_URL"]
    path.write_text(yaml.safe_dump(config))
    return {
        name: value
        for name, value in os.environ.items()
        if name != "KUBECONFIG" and not name.startswith("KUBEDAG_")
    }


def test_following_a_running_task_streams_each_line_as_printed_and_ends_with_the_task(
    kubedag: Kubedag,
    repository: Repository,
    controller_env: dict[str, str],
    e2e_store: Store,
    namespace: str,
    hold: Callable[[str, str], None],
    gate: Path,
    tmp_path: Path,
) -> None:
    run = TalkRun(
        "stream",
        kubedag=kubedag,
        repository=repository,
        store=e2e_store,
        gate=gate,
        log=tmp_path / "run.log",
    )
    row = run.wait_for_try(1, TaskState.RUNNING)
    hold(namespace, str(row.pod_name))
    config = tmp_path / "user.yaml"
    env = config_file_only(controller_env, config)
    follower = kubedag.start(
        "logs", str(row.run_id), "talk", "--follow", "--config", str(config), env=env
    )
    lines = LineReader(follower)
    for number in range(LINES):
        # The task prints line N+1 only after this ack, so each line came while it ran.
        assert lines.next() == f"line {number}"
        (gate / f"ack-{number}").touch()
    assert lines.next() == "done"
    assert lines.rest() == []
    assert follower.wait(LINE_TIMEOUT) == 0, follower.stderr.read() if follower.stderr else ""
    assert run.succeeds(), (tmp_path / "run.log").read_text()


def test_following_a_finished_try_prints_its_stored_log_while_the_next_try_runs(
    kubedag: Kubedag,
    repository: Repository,
    e2e_store: Store,
    kube: kubernetes.client.ApiClient,
    namespace: str,
    gate: Path,
    tmp_path: Path,
) -> None:
    run = TalkRun(
        "retry",
        kubedag=kubedag,
        repository=repository,
        store=e2e_store,
        gate=gate,
        log=tmp_path / "run.log",
    )
    first = run.wait_for_try(1, TaskState.FAILED)
    run.wait_for_try(2, TaskState.RUNNING)
    key = LogKey(TryKey(first.run_id, "talk", 0, 1), "task")
    stored = wait_for(
        lambda: LogStore(str(tmp_path / "logs")).read(key), timeout=30, what="try 1's log"
    )
    # Failed pods stay for `kubectl describe`; without it, only the store has the log.
    core = kubernetes.client.CoreV1Api(kube)
    core.delete_namespaced_pod(str(first.pod_name), namespace, _request_timeout=10)
    wait_for(
        lambda: (
            not (
                core.list_namespaced_pod(
                    namespace, field_selector=f"metadata.name={first.pod_name}"
                ).items
            )
        ),
        timeout=30,
        what="try 1's pod to be deleted",
    )

    follower = kubedag.start("logs", str(first.run_id), "talk", "--try", "1", "--follow")
    out, err = follower.communicate(timeout=LINE_TIMEOUT)

    assert (follower.returncode, out) == (0, stored), err
    assert stored == "try 1 fails\n"
    assert try_in(e2e_store, 2, TaskState.RUNNING) is not None
    (gate / "release").touch()
    assert run.succeeds(), (tmp_path / "run.log").read_text()


@pytest.mark.usefixtures("controller_env")
def test_following_a_running_try_whose_pod_is_already_gone_prints_its_stored_log(
    e2e_store: Store,
    namespace: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # What a follower meets when the executor stored the log and deleted the pod before
    # the watch's word that the try ended reached the database.
    run_id, (row,) = launched_run(
        e2e_store, Dag(name="gone", tasks=(task("talk"),)), namespace=namespace
    )
    with e2e_store.transaction() as uow:
        uow.cas_task_state(row.id, expected=TaskState.LAUNCHED, new=TaskState.RUNNING)
    key = LogKey(TryKey(run_id, "talk", 0, 1), "task")
    LogStore(str(tmp_path / "logs")).write(key, "one\ntwo\n")

    assert main(["logs", str(run_id), "talk", "--follow"]) == 0
    assert capsys.readouterr().out == "one\ntwo\n"
