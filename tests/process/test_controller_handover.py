"""Two `kubedag controller` processes, one PostgreSQL database, one cluster: kill the leader.

The standby must take over within the lease duration and finish the run the leader
started, and no task may run twice: every pod name is created once (watched from the
test), and every task instance has exactly one try, which finished once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import kubernetes.client
import kubernetes.watch
import pytest
import yaml

from controller.base.states import DagRunState, RunType, TaskState
from controller.devcluster import LocalCluster
from controller.store import DagRecord, Store, upgrade
from tests.e2e.podaudit import PodAudit
from tests.fixtures.cluster import ExternalCluster
from tests.fixtures.gate import Gate, dag_text
from tests.fixtures.ports import unused_port
from tests.gitsync.conftest import Remote, make_remote
from tests.process.controllers import scrape, stop_gracefully, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("node_agent")]

LEASE_DURATION = 3.0
RENEW_DEADLINE = 2.0
RETRY_PERIOD = 0.5
# The standby times the lease from when it saw the last renewal, one jittered poll
# (up to 2.2 retry periods) after it was written; it notices the expiry one poll later
# and then writes the lease once.
HANDOVER_WITHIN = LEASE_DURATION + 2 * RETRY_PERIOD * 2.2 + 1.0


def chain(gate: Gate) -> str:
    """Four tasks in a line; `two` holds at `gate`, so it is in flight when the leader dies."""
    tasks = [
        {"name": "one", "command": ["sh", "-c", "sleep 1"]},
        {"name": "two", "dependsOn": ["one"], "command": gate.command()},
        {"name": "three", "dependsOn": ["two"], "command": ["sh", "-c", "sleep 1"]},
        {"name": "four", "dependsOn": ["three"], "command": ["sh", "-c", "sleep 1"]},
    ]
    return dag_text("chain", tasks)


class Replica:
    def __init__(self, *, name: str, env: dict[str, str], data_dir: Path, config: Path) -> None:
        self.name = name
        self.port = unused_port()
        self.log = data_dir.with_suffix(".log")
        replica_env = {
            **env,
            "KUBEDAG_POD_NAME": name,
            "KUBEDAG_HTTP_PORT": str(self.port),
            "KUBEDAG_DATA_DIR": str(data_dir),
        }
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "controller", "controller", "--config", str(config)],
                env=replica_env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def leader_gauge(self) -> float | None:
        """kubedag_leader from /metrics; None while the replica does not answer yet."""
        try:
            return scrape(self.port)["kubedag_leader"][()]
        except OSError:
            return None

    def leading(self) -> bool:
        return self.leader_gauge() == 1.0

    def stop(self) -> None:
        stop_gracefully(self.process)


@pytest.fixture
def remote(tmp_path: Path, gate: Gate) -> Remote:
    remote = make_remote(tmp_path)
    remote.commit({"dags/chain.yaml": chain(gate)})
    return remote


@pytest.fixture
def replicas(
    tmp_path: Path,
    remote: Remote,
    postgres_database_url: str,
    cluster: LocalCluster | ExternalCluster,
    namespace: str,
) -> Iterator[tuple[Replica, Replica]]:
    upgrade(postgres_database_url)
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "http": {"bind": "127.0.0.1"},
                "leaderElection": {
                    "leaseName": "kubedag-handover",
                    "leaseDuration": LEASE_DURATION,
                    "renewDeadline": RENEW_DEADLINE,
                    "retryPeriod": RETRY_PERIOD,
                },
            }
        )
    )
    env = {
        **os.environ,
        "KUBECONFIG": str(cluster.kubeconfig),
        "KUBEDAG_DATABASE_URL": postgres_database_url,
        "KUBEDAG_GIT_URL": remote.url,
        "KUBEDAG_GIT_DAGS_PATH": "dags",
        "KUBEDAG_GIT_INTERVAL": "1s",
        "KUBEDAG_NAMESPACES": namespace,
        "KUBEDAG_POD_NAMESPACE": namespace,
        "KUBEDAG_INSTANCE": f"ho-{namespace}",
        "KUBEDAG_LOG_FORMAT": "text",
    }
    first = Replica(name="replica-a", env=env, data_dir=tmp_path / "a", config=config)
    wait_for(first.leading, timeout=60, what="replica-a to lead")
    second = Replica(name="replica-b", env=env, data_dir=tmp_path / "b", config=config)
    yield first, second
    for replica in (first, second):
        replica.stop()


def test_killing_the_leader_hands_over_within_the_lease_and_runs_nothing_twice(
    replicas: tuple[Replica, Replica],
    gate: Gate,
    postgres_database_url: str,
    kube: kubernetes.client.ApiClient,
    namespace: str,
) -> None:
    leader, standby = replicas
    pods = PodAudit(kube, namespace)
    store = Store.connect(postgres_database_url)
    try:
        wait_for(lambda: standby.leader_gauge() is not None, timeout=60, what="the standby")
        assert not standby.leading()
        dag = wait_for(
            lambda: _chain(store),
            timeout=30,
            what="the chain DAG in the database",
        )
        with store.transaction() as uow:
            run, _ = uow.create_run(
                dag_name="chain",
                logical_date=datetime.now(UTC),
                run_type=RunType.MANUAL,
                revision=str(dag.spec_revision),
                spec=dict(dag.spec or {}),
            )
        gate.wait_reached(timeout=60, what="task two, launched by the leader,")

        leader.process.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        wait_for(standby.leading, timeout=HANDOVER_WITHIN + 10, what="the standby to lead")
        handover = time.monotonic() - killed
        # Task two ends only now, so the standby learns of it from a pod it adopted.
        gate.open()

        final = wait_for(
            lambda: _finished(store, run.id), timeout=90, what="the run to finish on the standby"
        )
        with store.transaction() as uow:
            tries = uow.list_task_instances(run.id)
        pods.wait_seen(str(t.pod_name) for t in tries if t.pod_name)
    finally:
        store.close()
        pods.stop()

    assert handover <= HANDOVER_WITHIN, f"handover took {handover:.1f}s"
    assert final is DagRunState.SUCCEEDED
    assert sorted((t.task_name, t.try_number, t.state) for t in tries) == sorted(
        (name, 1, TaskState.SUCCEEDED) for name in ("one", "two", "three", "four")
    )
    assert len({t.pod_name for t in tries}) == 4
    assert all(len(pods.uids[str(t.pod_name)]) == 1 for t in tries), dict(pods.uids)


def _chain(store: Store) -> DagRecord | None:
    with store.transaction() as uow:
        record = uow.get_dag("chain")
    return record if record is not None and record.spec is not None else None


def _finished(store: Store, run_id: int) -> DagRunState | None:
    with store.transaction() as uow:
        run = uow.get_run(run_id)
    return run.state if run is not None and run.state.finished else None
