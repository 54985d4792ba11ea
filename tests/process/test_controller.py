"""The controller in process, on the real control plane: git pushes, webhook, health, metrics."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from controller.devcluster import LocalCluster
from controller.operations.pausing import set_paused
from controller.process.controller import Controller
from controller.store import DagRecord, Store
from tests.fixtures.cluster import ExternalCluster
from tests.gitsync.conftest import Remote, make_remote
from tests.process.controllers import (
    controller_config,
    github_push,
    http_get,
    scrape,
    wait_for,
)
from tests.process.test_dagsync import BROKEN, dag_yaml

pytestmark = pytest.mark.cluster

SECRET = b"webhook-shared-secret"
INTERVAL = 1.0
# A bound for what follows promptly (a fetch, a DAG sync, a scheduler update): reached
# only when it is broken, so generous for a loaded machine; far below the 10m interval
# that the webhook tests must beat.
FOLLOW_WITHIN = 30.0


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    remote = make_remote(tmp_path)
    remote.commit({"dags/.keep": ""})
    return remote


def start_controller(
    *,
    tmp_path: Path,
    remote: Remote,
    cluster: LocalCluster | ExternalCluster,
    namespace: str,
    interval: str,
) -> Controller:
    secret_file = tmp_path / "webhook-secret"
    secret_file.write_bytes(SECRET + b"\n")
    config = controller_config(
        remote=remote,
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'kubedag.db'}",
        kubeconfig=cluster.kubeconfig,
        namespace=namespace,
        interval=interval,
        webhook_secret_file=secret_file,
    )
    controller = Controller(config, migrate=True)
    controller.start()
    assert controller.leadership.wait_started(30)
    return controller


@pytest.fixture
def controller(
    tmp_path: Path, remote: Remote, cluster: LocalCluster | ExternalCluster, namespace: str
) -> Iterator[Controller]:
    controller = start_controller(
        tmp_path=tmp_path, remote=remote, cluster=cluster, namespace=namespace, interval="1s"
    )
    yield controller
    controller.stop()


def stored(controller: Controller, name: str) -> DagRecord | None:
    with controller.store.transaction() as uow:
        return uow.get_dag(name)


def wait_dag(controller: Controller, name: str, *, revision: str) -> DagRecord:
    return wait_for(
        lambda: (
            record
            if (record := stored(controller, name)) is not None and record.revision == revision
            else None
        ),
        timeout=FOLLOW_WITHIN,
        what=f"{name} at {revision[:12]}",
    )


def scheduled(controller: Controller, expected: list[str]) -> None:
    wait_for(
        lambda: controller.leadership.scheduled_dags() == expected,
        timeout=FOLLOW_WITHIN,
        what=f"the scheduler's jobs to be {expected}",
    )


def test_controller_follows_each_push_by_polling(controller: Controller, remote: Remote) -> None:
    added = remote.commit({"dags/nightly.yaml": dag_yaml("nightly")})
    assert wait_dag(controller, "nightly", revision=added).spec_revision == added
    scheduled(controller, ["nightly"])

    changed = remote.commit({"dags/nightly.yaml": dag_yaml("nightly", schedule="30 4 * * *")})
    record = wait_dag(controller, "nightly", revision=changed)
    assert record.spec is not None
    assert record.spec["schedule"] == "30 4 * * *"

    broken = remote.commit({"dags/nightly.yaml": BROKEN})
    record = wait_dag(controller, "nightly", revision=broken)
    assert not record.valid
    assert record.spec_revision == changed
    assert record.spec is not None
    assert record.spec["schedule"] == "30 4 * * *"
    assert record.error is not None
    assert "dags/nightly.yaml" in record.error
    scheduled(controller, ["nightly"])

    fixed = remote.commit({"dags/nightly.yaml": dag_yaml("nightly", schedule="15 2 * * *")})
    record = wait_dag(controller, "nightly", revision=fixed)
    assert record.valid
    assert record.spec_revision == fixed

    remote.commit({"dags/nightly.yaml": None})
    wait_for(
        lambda: (record := stored(controller, "nightly")) is not None and record.deleted,
        timeout=FOLLOW_WITHIN,
        what="nightly to be marked deleted",
    )
    scheduled(controller, [])


def test_webhook_push_syncs_at_once(
    tmp_path: Path, remote: Remote, cluster: LocalCluster | ExternalCluster, namespace: str
) -> None:
    # An interval far longer than the test: only the webhook can explain a prompt sync.
    controller = start_controller(
        tmp_path=tmp_path, remote=remote, cluster=cluster, namespace=namespace, interval="10m"
    )
    try:
        wait_for(
            lambda: controller.gitsync.status().ready, timeout=FOLLOW_WITHIN, what="the first sync"
        )
        sha = remote.commit({"dags/hooked.yaml": dag_yaml("hooked")})

        assert github_push(controller.http.port, secret=b"forged", after=sha) == 401
        assert github_push(controller.http.port, secret=SECRET, after=sha) == 202
        record = wait_for(
            lambda: stored(controller, "hooked"), timeout=FOLLOW_WITHIN, what="the pushed DAG"
        )
        assert record.revision == sha
    finally:
        controller.stop()


def test_readyz_reports_git_database_and_leadership(controller: Controller) -> None:
    wait_for(
        lambda: controller.gitsync.status().ready, timeout=FOLLOW_WITHIN, what="the first sync"
    )

    status, body = http_get(controller.http.port, "/readyz")

    assert status == 200, body
    assert "[+] git synced: at " in body
    assert "[+] database reachable" in body
    assert "[+] leader or standby: leader election disabled" in body
    assert http_get(controller.http.port, "/healthz") == (200, "ok\n")


def test_metrics_parse_and_count_invalid_dags_runs_and_tasks(
    controller: Controller, remote: Remote
) -> None:
    sha = remote.commit({"dags/nightly.yaml": BROKEN, "dags/good.yaml": dag_yaml("good")})
    wait_dag(controller, "good", revision=sha)

    def counted() -> dict[str, dict[tuple[tuple[str, str], ...], float]] | None:
        # The gauge is set just after the revision's transaction commits.
        samples = scrape(controller.http.port)
        return samples if samples["kubedag_invalid_dags"][()] == 1.0 else None

    samples = wait_for(
        counted, timeout=FOLLOW_WITHIN, what="the invalid-DAG gauge to count the broken file"
    )

    assert samples["kubedag_leader"][()] == 1.0
    # Every known state is exported, even at zero; the new DAG's latest due run may
    # already be running, so only presence is certain here.
    assert (("state", "running"),) in samples["kubedag_dag_runs"]
    assert (("state", "succeeded"),) in samples["kubedag_task_instances"]
    assert 0.0 <= samples["kubedag_git_sync_age_seconds"][()] < 60.0


def test_a_push_webhook_to_the_standby_makes_the_leader_sync_at_once(
    tmp_path: Path,
    remote: Remote,
    cluster: LocalCluster | ExternalCluster,
    namespace: str,
    postgres_database_url: str,
) -> None:
    """The Service sends webhooks to every replica; the one that reaches the standby is
    passed on to the leader, which would otherwise wait its whole (10 minute) interval."""
    secret_file = tmp_path / "webhook-secret"
    secret_file.write_bytes(SECRET + b"\n")
    instance = f"sb{namespace[-8:]}"

    def replica(name: str) -> Controller:
        config = controller_config(
            remote=remote,
            data_dir=tmp_path / name,
            database_url=postgres_database_url,
            kubeconfig=cluster.kubeconfig,
            namespace=namespace,
            interval="10m",
            webhook_secret_file=secret_file,
            instance=instance,
        )
        election = replace(
            config.leader_election,
            enabled=True,
            namespace=namespace,
            identity=name,
            lease_duration_seconds=4.0,
            renew_deadline_seconds=3.0,
            retry_period_seconds=0.5,
        )
        started = Controller(replace(config, leader_election=election), migrate=True)
        started.start()
        replicas.append(started)
        return started

    replicas: list[Controller] = []
    try:
        leader = replica("leader")
        wait_for(lambda: leader.is_leader, timeout=30, what="the first replica to lead")
        standby = replica("standby")
        for each in replicas:
            wait_for(lambda r=each: r.gitsync.status().ready, timeout=15, what="a first sync")
        assert not standby.is_leader
        listener = standby._push_listener
        assert listener is not None
        wait_for(listener.listening.is_set, timeout=FOLLOW_WITHIN, what="the standby's listener")
        sha = remote.commit({"dags/hooked.yaml": dag_yaml("hooked")})
        assert github_push(standby.http.port, secret=SECRET, after=sha) == 202
        record = wait_for(
            lambda: stored(leader, "hooked"), timeout=FOLLOW_WITHIN, what="the leader's sync"
        )
        assert record.revision == sha
    finally:
        for each in reversed(replicas):
            each.stop()


def test_a_dag_paused_and_unpaused_outside_git_leaves_and_regains_its_schedule(
    controller: Controller, remote: Remote
) -> None:
    added = remote.commit({"dags/nightly.yaml": dag_yaml("nightly")})
    wait_dag(controller, "nightly", revision=added)
    scheduled(controller, ["nightly"])
    other_process = Store.connect(str(controller.config.database_url))
    try:
        set_paused(other_process, "nightly", paused=True, by="cli:alice@laptop")
        wait_for(
            lambda: controller.leadership.scheduled_dags() == [],
            timeout=15,
            what="the paused DAG's job to go",
        )
        # A commit that leaves spec.paused alone leaves the DAG paused.
        touched = remote.commit({"dags/nightly.yaml": dag_yaml("nightly", schedule="0 5 * * *")})
        assert wait_dag(controller, "nightly", revision=touched).paused
        set_paused(other_process, "nightly", paused=False, by="cli:alice@laptop")
        wait_for(
            lambda: controller.leadership.scheduled_dags() == ["nightly"],
            timeout=15,
            what="the unpaused DAG's job to come back",
        )
    finally:
        other_process.close()
