"""The launcher against the real API server, and its retry rules against scripted failures.

The API server cannot be made to answer 429 or 503 on demand, so those rules are checked
against a small HTTP server on loopback that answers with scripted statuses; everything
else talks to the local control plane.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import kubernetes.client
import pytest

from controller.base.backoff import Backoff
from controller.executor.kubeclient import make_api_client
from controller.executor.launcher import Launcher, LaunchOutcome, LaunchRequest
from controller.executor.observer import LaunchStatus, NullObserver
from tests.fixtures.httpserver import QuietHandler, Served

LABEL = "kubedag.io/test"


def pod_body(name: str, *, image: str = "busybox:1.36") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {LABEL: "launcher"}},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "task", "image": image, "command": ["true"]}],
        },
    }


@pytest.fixture
def api(cluster: Any) -> Iterator[kubernetes.client.ApiClient]:
    with make_api_client(kubeconfig=str(cluster.kubeconfig)) as client:
        yield client


def pod_names(kube: kubernetes.client.ApiClient, namespace: str) -> list[str]:
    pods = kubernetes.client.CoreV1Api(kube).list_namespaced_pod(
        namespace, label_selector=LABEL, _request_timeout=10
    )
    return sorted(pod.metadata.name for pod in pods.items)


@pytest.mark.cluster
def test_launch_creates_every_pod(
    api: kubernetes.client.ApiClient, kube: kubernetes.client.ApiClient, namespace: str
) -> None:
    requests = [LaunchRequest(namespace, pod_body(f"p-{i}"), key=i) for i in range(40)]
    with Launcher(api) as launcher:
        outcomes = launcher.launch(requests)
    assert [o.status for o in outcomes] == [LaunchStatus.CREATED] * 40
    assert [o.key for o in outcomes] == list(range(40))
    assert pod_names(kube, namespace) == sorted(f"p-{i}" for i in range(40))


@pytest.mark.cluster
def test_second_launch_adopts_the_pods_and_creates_no_duplicate(
    api: kubernetes.client.ApiClient, kube: kubernetes.client.ApiClient, namespace: str
) -> None:
    requests = [LaunchRequest(namespace, pod_body(f"p-{i}"), key=i) for i in range(10)]
    with Launcher(api) as launcher:
        first = launcher.launch(requests)
        uids = {p: _uid(kube, namespace, p) for p in (r.pod_name for r in requests)}
        second = launcher.launch(requests)
    assert {o.status for o in first} == {LaunchStatus.CREATED}
    assert {o.status for o in second} == {LaunchStatus.ALREADY_EXISTS}
    assert all(o.status.launched for o in second)
    assert pod_names(kube, namespace) == sorted(r.pod_name for r in requests)
    assert {p: _uid(kube, namespace, p) for p in uids} == uids


def _uid(kube: kubernetes.client.ApiClient, namespace: str, name: str) -> str:
    pod = kubernetes.client.CoreV1Api(kube).read_namespaced_pod(
        name, namespace, _request_timeout=10
    )
    return str(pod.metadata.uid)


@pytest.mark.cluster
def test_invalid_pod_is_rejected_with_the_api_message(
    api: kubernetes.client.ApiClient, kube: kubernetes.client.ApiClient, namespace: str
) -> None:
    body = pod_body("bad")
    body["spec"]["containers"][0]["name"] = "Not_A_Dns_Label"
    with Launcher(api) as launcher:
        [outcome] = launcher.launch([LaunchRequest(namespace, body)])
    assert outcome.status is LaunchStatus.REJECTED
    assert outcome.http_status == 422
    assert 'Pod "bad" is invalid' in outcome.message
    assert "spec.containers[0].name" in outcome.message
    assert outcome.attempts == 1
    assert pod_names(kube, namespace) == []


@pytest.mark.cluster
def test_forbidden_create_says_which_verb_and_resource(
    cluster: Any, kube: kubernetes.client.ApiClient, namespace: str
) -> None:
    core = kubernetes.client.CoreV1Api(kube)
    account = core.read_namespaced_service_account("default", namespace, _request_timeout=10)
    secret = core.read_namespaced_secret(account.secrets[0].name, namespace, _request_timeout=10)
    configuration = kubernetes.client.Configuration()
    configuration.host = kube.configuration.host
    configuration.ssl_ca_cert = kube.configuration.ssl_ca_cert
    configuration.verify_ssl = kube.configuration.verify_ssl
    token = base64.b64decode(secret.data["token"]).decode()
    configuration.api_key = {"authorization": f"Bearer {token}"}
    with (
        make_api_client(configuration=configuration) as unprivileged,
        Launcher(unprivileged) as launcher,
    ):
        [outcome] = launcher.launch([LaunchRequest(namespace, pod_body("nope"))])
    assert outcome.status is LaunchStatus.REJECTED
    assert outcome.http_status == 403
    assert outcome.message.startswith(f"forbidden to create pods in namespace '{namespace}'")
    assert 'cannot create resource "pods"' in outcome.message


@pytest.mark.cluster
def test_submit_reports_each_outcome_through_its_callback(
    api: kubernetes.client.ApiClient, namespace: str
) -> None:
    seen: list[LaunchOutcome] = []
    done = threading.Event()

    def record(outcome: LaunchOutcome) -> None:
        seen.append(outcome)
        if len(seen) == 5:
            done.set()

    with Launcher(api) as launcher:
        for i in range(5):
            launcher.submit(LaunchRequest(namespace, pod_body(f"c-{i}"), key=("run", i)), record)
        assert done.wait(30)
    assert sorted(o.key for o in seen) == [("run", i) for i in range(5)]
    assert {o.status for o in seen} == {LaunchStatus.CREATED}


def test_a_pool_smaller_than_the_workers_is_refused() -> None:
    configuration = kubernetes.client.Configuration(host="http://127.0.0.1:1")
    with (
        make_api_client(configuration=configuration, pool_maxsize=4) as small,
        pytest.raises(ValueError, match="keeps 4 connections"),
    ):
        Launcher(small, workers=16)


class ScriptedServer:
    """Answers pod creates with a script of (status, headers) pairs, then 201 forever."""

    def __init__(self, script: list[tuple[int, dict[str, str]]]) -> None:
        self.script = list(script)
        self.hits: list[float] = []
        owner = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                owner.hits.append(time.monotonic())
                status, headers = owner.script.pop(0) if owner.script else (201, {})
                body = json.dumps(
                    {"kind": "Status", "reason": "TooManyRequests", "message": "slow down"}
                    if status != 201
                    else {"kind": "Pod", "metadata": {"name": "x"}}
                ).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.served = Served("127.0.0.1", Handler)

    def client(self) -> kubernetes.client.ApiClient:
        configuration = kubernetes.client.Configuration(host=self.served.url_base)
        return make_api_client(configuration=configuration)

    def close(self) -> None:
        self.served.close()


@pytest.fixture
def scripted() -> Iterator[list[ScriptedServer]]:
    servers: list[ScriptedServer] = []
    yield servers
    for server in servers:
        server.close()


FAST = Backoff(base=0.02, cap=0.1, max_attempts=5, max_elapsed=5)


def test_throttling_is_retried_after_the_servers_retry_after(
    scripted: list[ScriptedServer],
) -> None:
    server = ScriptedServer([(429, {"Retry-After": "1"})])
    scripted.append(server)
    with server.client() as api, Launcher(api, backoff=FAST) as launcher:
        [outcome] = launcher.launch([LaunchRequest("ns", pod_body("x"))])
    assert (outcome.status, outcome.attempts) == (LaunchStatus.CREATED, 2)
    assert server.hits[1] - server.hits[0] >= 0.95


def test_server_errors_are_retried_until_the_bound_then_given_up(
    scripted: list[ScriptedServer],
) -> None:
    server = ScriptedServer([(503, {})] * 10)
    scripted.append(server)
    with server.client() as api, Launcher(api, backoff=FAST) as launcher:
        [outcome] = launcher.launch([LaunchRequest("ns", pod_body("x"))])
    assert outcome.status is LaunchStatus.GAVE_UP
    assert outcome.attempts == 5
    assert len(server.hits) == 5
    assert "HTTP 503" in outcome.message
    assert "after 5 attempts" in outcome.message


def test_unreachable_server_is_given_up_with_the_connection_error() -> None:
    configuration = kubernetes.client.Configuration(host="http://127.0.0.1:1")
    with (
        make_api_client(configuration=configuration) as api,
        Launcher(api, backoff=FAST) as launcher,
    ):
        [outcome] = launcher.launch([LaunchRequest("ns", pod_body("x"))])
    assert outcome.status is LaunchStatus.GAVE_UP
    assert outcome.http_status is None
    assert "refused" in outcome.message.lower()


def test_closing_ends_waiting_requests_without_sending_them(
    scripted: list[ScriptedServer],
) -> None:
    server = ScriptedServer([(429, {"Retry-After": "30"})])
    scripted.append(server)
    slow = Backoff(base=0.02, cap=0.1, max_attempts=5, max_elapsed=60)
    with server.client() as api:
        launcher = Launcher(api, workers=1, backoff=slow)
        retrying = launcher.submit(LaunchRequest("ns", pod_body("a")))
        queued = launcher.submit(LaunchRequest("ns", pod_body("b")))
        while not server.hits:
            time.sleep(0.01)
        started = time.monotonic()
        launcher.close()
    assert time.monotonic() - started < 5
    assert retrying.result().status is LaunchStatus.GAVE_UP
    assert "may have created it" in retrying.result().message
    assert queued.result().status is LaunchStatus.GAVE_UP
    assert len(server.hits) == 1


class ApiErrors(NullObserver):
    """Records the status of every failed API call the launcher tells of."""

    def __init__(self) -> None:
        self.statuses: list[int | None] = []

    def api_error(self, status: int | None) -> None:
        self.statuses.append(status)


def test_every_failed_create_attempt_is_told_to_the_observer(
    scripted: list[ScriptedServer],
) -> None:
    server = ScriptedServer([(503, {}), (429, {})])
    scripted.append(server)
    errors = ApiErrors()
    with server.client() as api, Launcher(api, backoff=FAST, observer=errors) as launcher:
        [outcome] = launcher.launch([LaunchRequest("ns", pod_body("x"))])
    assert outcome.status is LaunchStatus.CREATED
    assert errors.statuses == [503, 429]


def test_an_adopted_pod_is_no_api_error(scripted: list[ScriptedServer]) -> None:
    server = ScriptedServer([(409, {})])
    scripted.append(server)
    errors = ApiErrors()
    with server.client() as api, Launcher(api, backoff=FAST, observer=errors) as launcher:
        [outcome] = launcher.launch([LaunchRequest("ns", pod_body("x"))])
    assert outcome.status is LaunchStatus.ALREADY_EXISTS
    assert errors.statuses == []


def test_an_unreachable_server_is_told_as_no_answer_on_every_attempt() -> None:
    configuration = kubernetes.client.Configuration(host="http://127.0.0.1:1")
    errors = ApiErrors()
    with (
        make_api_client(configuration=configuration) as api,
        Launcher(api, backoff=FAST, observer=errors) as launcher,
    ):
        [outcome] = launcher.launch([LaunchRequest("ns", pod_body("x"))])
    assert errors.statuses == [None] * outcome.attempts
