"""The manifests' Roles are exactly enough: the controller, authenticated only as the
manifests' ServiceAccount through the real RBAC of the control plane, runs the sample
DAGs; with any single verb removed it reports the 403 clearly. The rights the base
grants the controller in its two namespaces (the Lease at home, pods where workers
run) are granted here in one test namespace, where the controller both leads and
runs pods. And a git token planted
in the Secret worker pods fetch with appears in no pod, log or database row (the
controller's own token file is covered by the git-sync tests, which need an https
remote to use it).
"""

from __future__ import annotations

import base64
import copy
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.watch
import pytest
import yaml
from sqlalchemy import create_engine, inspect, text

from controller.base.states import DagRunState
from controller.runtime.manual import trigger_run
from controller.store import Store, upgrade
from tests.deploy.manifests import render
from tests.e2e.podaudit import PodAudit
from tests.e2e.repo import SAMPLES, Repository
from tests.fixtures.access import wait_authorized
from tests.fixtures.ports import unused_port
from tests.process.controllers import stop_gracefully

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("node_agent")]

PLANTED_TOKEN = "kdg-planted-token-7f3e9a1c5b"
ACCOUNT = "kubedag-controller"


def controller_rules() -> list[dict[str, Any]]:
    """The rules of every Role the base binds to the controller's ServiceAccount."""
    rendered = render("base")
    bound = {
        obj["roleRef"]["name"]
        for obj in rendered
        if obj["kind"] == "RoleBinding"
        and any(subject["name"] == ACCOUNT for subject in obj["subjects"])
    }
    return [
        rule
        for obj in rendered
        if obj["kind"] == "Role" and obj["metadata"]["name"] in bound
        for rule in obj["rules"]
    ]


def role_verbs() -> list[tuple[str, str, str]]:
    """(apiGroup, resource, verb) for every permission the Roles grant the controller."""
    return [
        (group, resource, verb)
        for rule in controller_rules()
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    ]


def rules_without(removed: tuple[str, str, str] | None) -> list[dict[str, Any]]:
    rules = []
    for rule in copy.deepcopy(controller_rules()):
        if (
            removed is not None
            and removed[0] in rule["apiGroups"]
            and removed[1] in rule["resources"]
        ):
            rule["verbs"] = [verb for verb in rule["verbs"] if verb != removed[2]]
        if rule["verbs"]:
            rules.append(rule)
    return rules


def install_rbac(
    kube: kubernetes.client.ApiClient, namespace: str, rules: list[dict[str, Any]]
) -> None:
    """The controller's ServiceAccount, a Role with `rules` and its RoleBinding, in `namespace`."""
    core = kubernetes.client.CoreV1Api(kube)
    rbac = kubernetes.client.RbacAuthorizationV1Api(kube)
    account = next(
        o
        for o in render("base")
        if o["kind"] == "ServiceAccount" and o["metadata"]["name"] == ACCOUNT
    )
    account["metadata"] = {**account["metadata"], "namespace": namespace}
    role = {"metadata": {"name": ACCOUNT, "namespace": namespace}, "rules": rules}
    binding = {
        "metadata": {"name": ACCOUNT, "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ACCOUNT},
        "subjects": [{"kind": "ServiceAccount", "name": ACCOUNT, "namespace": namespace}],
    }
    core.create_namespaced_service_account(namespace, account, _request_timeout=10)
    rbac.create_namespaced_role(namespace, role, _request_timeout=10)
    rbac.create_namespaced_role_binding(namespace, binding, _request_timeout=10)
    # The controller's first calls must not be refused for a binding still on its way.
    rule = rules[0]
    wait_authorized(
        kube,
        user=f"system:serviceaccount:{namespace}:{ACCOUNT}",
        namespace=namespace,
        verb=rule["verbs"][0],
        resource=rule["resources"][0],
        group=rule["apiGroups"][0],
    )


def account_kubeconfig(
    kube: kubernetes.client.ApiClient, namespace: str, admin: Path, path: Path
) -> Path:
    """A kubeconfig that authenticates only with the ServiceAccount's token."""
    core = kubernetes.client.CoreV1Api(kube)
    deadline = time.monotonic() + 60
    while True:
        account = core.read_namespaced_service_account(ACCOUNT, namespace, _request_timeout=10)
        if account.secrets:
            break
        if time.monotonic() > deadline:
            raise AssertionError("the ServiceAccount's token was never created")
        time.sleep(0.2)
    secret = core.read_namespaced_secret(account.secrets[0].name, namespace, _request_timeout=10)
    token = base64.b64decode(secret.data["token"]).decode()
    config = yaml.safe_load(admin.read_text())
    cluster = config["clusters"][0]
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [cluster],
                "users": [{"name": ACCOUNT, "user": {"token": token}}],
                "contexts": [
                    {"name": ACCOUNT, "context": {"cluster": cluster["name"], "user": ACCOUNT}}
                ],
                "current-context": ACCOUNT,
            }
        )
    )
    return path


@dataclass
class ControllerProcess:
    process: subprocess.Popen[bytes]
    log: Path
    data_dir: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        stop_gracefully(self.process)


def start_controller(
    *, tmp_path: Path, kubeconfig: Path, namespace: str, database_url: str, repo_url: str
) -> ControllerProcess:
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "logFormat": "text",
                "logLevel": "DEBUG",
                "instance": f"rbac-{namespace}",
                "dataDir": str(tmp_path / "data"),
                "http": {"bind": "127.0.0.1", "port": unused_port()},
                "git": {
                    "url": repo_url,
                    "dagsPath": "sample-dags",
                    "interval": "1s",
                    "credentialsSecret": "kubedag-git",
                },
                "executor": {"namespaces": [namespace], "reconcileInterval": "5s"},
                "leaderElection": {
                    "namespace": namespace,
                    "identity": "rbac-test",
                    "leaseDuration": "4s",
                    "renewDeadline": "3s",
                    "retryPeriod": "1s",
                },
            }
        )
    )
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "KUBEDAG_DATABASE_URL": database_url,
        "KUBEDAG_CONFIG": str(config),
    }
    log = tmp_path / "controller.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "controller", "controller"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    return ControllerProcess(process=process, log=log, data_dir=tmp_path / "data")


def expected_states() -> dict[str, DagRunState]:
    expected = {}
    for path in sorted(SAMPLES.glob("*.yaml")):
        first = path.read_text().splitlines()[0]
        name = yaml.safe_load(path.read_text())["metadata"]["name"]
        expected[name] = DagRunState(first.removeprefix("# expected:").strip())
    return expected


def wait_for_dags(
    store: Store, names: set[str], *, timeout: float, controller: ControllerProcess
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with store.transaction() as uow:
            known = {dag.name for dag in uow.list_dags() if dag.spec is not None}
        if names <= known:
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"DAGs never synced: {sorted(names - known)}\n{controller.output()[-4000:]}"
            )
        time.sleep(0.2)


def wait_for_runs(
    store: Store, run_ids: dict[str, int], *, timeout: float, controller: ControllerProcess
) -> dict[str, DagRunState]:
    deadline = time.monotonic() + timeout
    while True:
        with store.transaction() as uow:
            runs = {name: uow.get_run(run_id) for name, run_id in run_ids.items()}
        states = {name: run.state for name, run in runs.items() if run is not None}
        if len(states) == len(run_ids) and all(state.finished for state in states.values()):
            return states
        if time.monotonic() > deadline:
            raise AssertionError(f"runs unfinished: {states}\n{controller.output()[-4000:]}")
        time.sleep(0.3)


def create_git_secret(kube: kubernetes.client.ApiClient, namespace: str) -> None:
    kubernetes.client.CoreV1Api(kube).create_namespaced_secret(
        namespace,
        {"metadata": {"name": "kubedag-git"}, "stringData": {"token": PLANTED_TOKEN}},
        _request_timeout=10,
    )


def make_repository(root: Path) -> Repository:
    root.mkdir(parents=True, exist_ok=True)
    repo = Repository(root)
    repo.add_samples()
    repo.commit("sample DAGs")
    return repo


@pytest.fixture
def repository(tmp_path: Path) -> Repository:
    return make_repository(tmp_path / "repo")


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'kubedag.db'}"
    upgrade(url)
    return url


@dataclass
class FullRun:
    states: dict[str, DagRunState]
    controller: ControllerProcess
    pods: list[dict[str, Any]]
    database_url: str


@pytest.fixture(scope="module")
def full_run(
    tmp_path_factory: pytest.TempPathFactory,
    kube: kubernetes.client.ApiClient,
    cluster: Any,
) -> Iterator[FullRun]:
    """The sample DAGs run once under the manifests' Role, shared by the checks below."""
    tmp_path = tmp_path_factory.mktemp("rbac")
    core = kubernetes.client.CoreV1Api(kube)
    namespace = f"rbac-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": namespace}}, _request_timeout=10)
    create_git_secret(kube, namespace)
    install_rbac(kube, namespace, rules_without(None))
    kubeconfig = account_kubeconfig(kube, namespace, cluster.kubeconfig, tmp_path / "sa.yaml")
    database_url = f"sqlite:///{tmp_path / 'kubedag.db'}"
    upgrade(database_url)
    recorder = PodAudit(kube, namespace)
    controller = start_controller(
        tmp_path=tmp_path,
        kubeconfig=kubeconfig,
        namespace=namespace,
        database_url=database_url,
        repo_url=make_repository(tmp_path / "repo").url,
    )
    store = Store.connect(database_url)
    try:
        expected = expected_states()
        wait_for_dags(store, set(expected), timeout=60, controller=controller)
        run_ids = {
            name: trigger_run(store, dag_name=name, params={}).id for name in sorted(expected)
        }
        states = wait_for_runs(store, run_ids, timeout=180, controller=controller)
        with store.transaction() as uow:
            tries = [row for run_id in run_ids.values() for row in uow.list_task_instances(run_id)]
        recorder.wait_seen(row.pod_name for row in tries if row.pod_name)
        # The checks read what the controller left behind: its whole log and its data
        # dir at rest. Running, it fetches git every second, and a fetch's lock files
        # come and go under a scan of that dir.
        controller.stop()
        yield FullRun(states, controller, recorder.seen, database_url)
    finally:
        controller.stop()
        recorder.stop()
        store.close()
        core.delete_namespace(namespace, _request_timeout=10)


def test_manifests_role_runs_every_sample_dag(full_run: FullRun) -> None:
    assert full_run.states == expected_states()
    output = full_run.controller.output()
    assert "forbidden" not in output.lower(), output[-4000:]


def test_planted_git_token_appears_in_no_pod_log_or_database_row(full_run: FullRun) -> None:
    assert full_run.pods, "no pod was seen"
    for pod in full_run.pods:
        assert PLANTED_TOKEN not in yaml.safe_dump(pod), pod["metadata"]["name"]
    assert PLANTED_TOKEN not in full_run.controller.output()
    stored_logs = [p for p in full_run.controller.data_dir.rglob("*") if p.is_file()]
    for path in stored_logs:
        assert PLANTED_TOKEN.encode() not in path.read_bytes(), path
    engine = create_engine(full_run.database_url)
    with engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            for row in connection.execute(text(f'SELECT * FROM "{table}"')):  # noqa: S608
                assert PLANTED_TOKEN not in repr(tuple(row)), table
    engine.dispose()


@pytest.mark.parametrize("removed", role_verbs(), ids=lambda p: f"{p[2]}-{p[1].replace('/', '-')}")
def test_each_permission_is_needed_and_its_absence_is_reported(
    removed: tuple[str, str, str],
    tmp_path: Path,
    kube: kubernetes.client.ApiClient,
    cluster: Any,
    namespace: str,
    repository: Repository,
    database_url: str,
) -> None:
    _, resource, verb = removed
    create_git_secret(kube, namespace)
    install_rbac(kube, namespace, rules_without(removed))
    kubeconfig = account_kubeconfig(kube, namespace, cluster.kubeconfig, tmp_path / "sa.yaml")
    controller = start_controller(
        tmp_path=tmp_path,
        kubeconfig=kubeconfig,
        namespace=namespace,
        database_url=database_url,
        repo_url=repository.url,
    )
    store = Store.connect(database_url)
    wanted = f'cannot {verb} resource "{resource}"'
    try:
        deadline = time.monotonic() + 90
        triggered = False
        while wanted not in controller.output():
            if not triggered:
                with store.transaction() as uow:
                    ready = uow.get_dag("etl-orders") is not None
                if ready:
                    trigger_run(store, dag_name="etl-orders", params={})
                    triggered = True
            assert time.monotonic() < deadline, (
                f"the controller never reported {wanted!r}:\n{controller.output()[-4000:]}"
            )
            time.sleep(0.3)
    finally:
        controller.stop()
        store.close()
