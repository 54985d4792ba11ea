"""The HTTP endpoint over a real socket: probes, scrapes, webhook routing and limits."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator, Mapping

import pytest
from prometheus_client.parser import text_string_to_metric_families

from controller.gitsync.webhook import PushEvent, WebhookError, verify_push
from controller.metrics import Metrics, StateCounts
from controller.process.http import MAX_API_BODY_BYTES, HttpServer, ReadinessCheck, WebhookHandler
from controller.ui import Reply


class Served:
    def __init__(self, server: HttpServer, metrics: Metrics) -> None:
        self.server = server
        self.metrics = metrics

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=dict(headers or {}))
            response = conn.getresponse()
            return response.status, response.read().decode()
        finally:
            conn.close()


@contextlib.contextmanager
def serve(
    *,
    checks: Mapping[str, ReadinessCheck] | None = None,
    webhook: WebhookHandler | None = None,
    check_timeout: float = 2.0,
    max_webhook_bytes: int = 1024,
    socket_timeout: float = 10.0,
) -> Iterator[Served]:
    metrics = Metrics()
    server = HttpServer(
        metrics=metrics,
        host="127.0.0.1",
        port=0,
        readiness_checks=checks,
        webhook=webhook,
        check_timeout=check_timeout,
        max_webhook_bytes=max_webhook_bytes,
        socket_timeout=socket_timeout,
    )
    server.start()
    try:
        yield Served(server, metrics)
    finally:
        server.stop()


@pytest.fixture
def plain() -> Iterator[Served]:
    with serve() as served:
        yield served


def test_healthz_answers_while_the_process_lives(plain: Served) -> None:
    assert plain.request("GET", "/healthz") == (200, "ok\n")


def test_port_zero_binds_a_real_port_that_is_freed_on_stop() -> None:
    server = HttpServer(metrics=Metrics(), host="127.0.0.1", port=0)
    port = server.port
    assert port > 0
    server.start()
    server.stop()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))


def test_metrics_scrape_parses_with_the_prometheus_parser(plain: Served) -> None:
    plain.metrics.pods_launched.labels(outcome="already_exists").inc()
    plain.metrics.leader.set(1)
    plain.metrics.set_state_counts_source(lambda: StateCounts(runs={"running": 3}))
    status, body = plain.request("GET", "/metrics")
    assert status == 200
    families = {family.name: family for family in text_string_to_metric_families(body)}
    assert families["kubedag_pods_launched"].type == "counter"
    assert families["kubedag_leader"].samples[0].value == 1
    runs = {s.labels["state"]: s.value for s in families["kubedag_dag_runs"].samples}
    assert runs["running"] == 3
    assert "kubedag_launch_latency_seconds" in families


def test_readyz_is_200_with_a_line_per_check_when_all_pass() -> None:
    checks = {"git synced": lambda: (True, "at abc123"), "leader or standby": lambda: (True, "")}
    with serve(checks=checks) as served:
        status, body = served.request("GET", "/readyz")
        assert status == 200
        assert "[+] git synced: at abc123" in body
        assert "[+] leader or standby" in body


def test_readyz_is_503_naming_the_failing_checks() -> None:
    checks = {
        "git synced": lambda: (True, "at abc123"),
        "database reachable": lambda: (False, "connection refused"),
    }
    with serve(checks=checks) as served:
        status, body = served.request("GET", "/readyz")
        assert status == 503
        assert "[-] database reachable: connection refused" in body
        assert body.rstrip().endswith("not ready: database reachable")


def test_a_hanging_check_fails_the_probe_within_the_timeout_and_is_not_piled_up() -> None:
    release = threading.Event()
    calls = []

    def hanging() -> tuple[bool, str]:
        calls.append(1)
        release.wait(30)
        return True, "finally"

    with serve(checks={"database reachable": hanging}, check_timeout=0.3) as served:
        try:
            for _ in range(3):
                started = time.monotonic()
                status, body = served.request("GET", "/readyz")
                assert time.monotonic() - started < 2
                assert status == 503
                assert "no answer within 0.3s" in body
            assert len(calls) == 1
        finally:
            release.set()


def test_a_check_that_raises_fails_without_leaking_the_traceback() -> None:
    def broken() -> tuple[bool, str]:
        raise RuntimeError("secret-dsn://user:pw@db")

    with serve(checks={"database reachable": broken}) as served:
        status, body = served.request("GET", "/readyz")
        assert status == 503
        assert "check raised RuntimeError" in body
        assert "secret-dsn" not in body
        assert "Traceback" not in body


def test_webhook_hands_headers_and_body_to_the_handler() -> None:
    received: list[tuple[str, bytes]] = []

    def handler(headers: Mapping[str, str], body: bytes) -> tuple[int, str]:
        received.append((headers["x-github-event"], body))
        return 202, "sync requested"

    with serve(webhook=handler) as served:
        status, body = served.request(
            "POST", "/webhook", body=b'{"ref":"main"}', headers={"X-GitHub-Event": "push"}
        )
        assert (status, body) == (202, "sync requested\n")
    assert received == [("push", b'{"ref":"main"}')]


def test_webhook_refuses_a_body_over_the_limit_without_calling_the_handler() -> None:
    calls = []

    def handler(headers: Mapping[str, str], body: bytes) -> tuple[int, str]:
        calls.append(body)
        return 200, "ok"

    with serve(webhook=handler, max_webhook_bytes=100) as served:
        status, _ = served.request("POST", "/webhook", body=b"x" * 101)
        assert status == 413
        assert served.request("POST", "/webhook", body=b"x" * 100)[0] == 200
    assert calls == [b"x" * 100]


def test_webhook_without_content_length_is_refused() -> None:
    def handler(headers: Mapping[str, str], body: bytes) -> tuple[int, str]:
        return 200, "ok"

    with (
        serve(webhook=handler) as served,
        socket.create_connection(("127.0.0.1", served.server.port), timeout=5) as sock,
    ):
        sock.sendall(b"POST /webhook HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 411")


def test_a_failing_webhook_handler_answers_500_without_the_traceback() -> None:
    def handler(headers: Mapping[str, str], body: bytes) -> tuple[int, str]:
        raise ValueError("token=hunter2")

    with serve(webhook=handler) as served:
        assert served.request("POST", "/webhook", body=b"{}") == (500, "internal error\n")


def test_webhook_route_is_404_when_no_handler_is_configured(plain: Served) -> None:
    assert plain.request("POST", "/webhook", body=b"{}")[0] == 404


def test_wrong_methods_and_unknown_paths_are_refused(plain: Served) -> None:
    assert plain.request("GET", "/webhook")[0] == 405
    assert plain.request("POST", "/healthz", body=b"")[0] == 405
    assert plain.request("GET", "/nope")[0] == 404


def test_a_client_that_stalls_mid_request_is_disconnected() -> None:
    with serve(socket_timeout=0.3) as served:
        with socket.create_connection(("127.0.0.1", served.server.port), timeout=5) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")
            started = time.monotonic()
            assert sock.recv(100) == b""
            assert time.monotonic() - started < 3
        assert served.request("GET", "/healthz")[0] == 200


def test_a_signed_github_push_reaches_the_verifier_through_the_endpoint() -> None:
    secret = b"s3cret"
    body = json.dumps({"ref": "refs/heads/main", "after": "a" * 40}).encode()
    signature = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    pushes: list[PushEvent] = []

    def handler(headers: Mapping[str, str], payload: bytes) -> tuple[int, str]:
        try:
            pushes.append(verify_push(headers, payload, secret=secret))
        except WebhookError as error:
            return 401, error.reason
        return 202, "sync requested"

    with serve(webhook=handler, max_webhook_bytes=64 * 1024) as served:
        headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": signature}
        assert served.request("POST", "/webhook", body=body, headers=headers)[0] == 202
        forged = {**headers, "X-Hub-Signature-256": "sha256=" + "0" * 64}
        assert served.request("POST", "/webhook", body=body, headers=forged)[0] == 401
    assert [(p.provider, p.ref, p.after) for p in pushes] == [
        ("github", "refs/heads/main", "a" * 40)
    ]


def test_an_api_body_over_the_limit_is_refused_without_calling_the_api() -> None:
    bodies: list[bytes] = []

    def api(method: str, target: str, headers: Mapping[str, str], body: bytes) -> Reply:
        bodies.append(body)
        return Reply(200, b"{}")

    server = HttpServer(metrics=Metrics(), host="127.0.0.1", port=0, api=api)
    server.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            # Announced, never sent: the refusal must come from the length alone.
            conn.putrequest("POST", "/api/v1/runs")
            conn.putheader("Content-Length", str(MAX_API_BODY_BYTES + 1))
            conn.endheaders()
            assert conn.getresponse().status == 413
        finally:
            conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            conn.request("POST", "/api/v1/runs", body=b"x" * MAX_API_BODY_BYTES)
            assert conn.getresponse().status == 200
        finally:
            conn.close()
    finally:
        server.stop()
    assert bodies == [b"x" * MAX_API_BODY_BYTES]


def test_a_streamed_api_answer_goes_out_chunk_by_chunk_and_stops_when_the_client_leaves() -> None:
    second = threading.Event()
    closed = threading.Event()

    def produce() -> Iterator[bytes]:
        try:
            yield b"line 0\n"
            second.wait(10)
            # Far longer than the test waits: only the client leaving can end it in time.
            for number in range(1, 100_000):
                yield f"line {number}\n".encode()
                time.sleep(0.01)
        finally:
            closed.set()

    def api(method: str, target: str, headers: Mapping[str, str], body: bytes) -> Reply:
        return Reply(200, produce(), content_type="text/plain")

    server = HttpServer(metrics=Metrics(), host="127.0.0.1", port=0, api=api)
    server.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("GET", "/api/v1/log")
        response = conn.getresponse()
        assert response.getheader("Transfer-Encoding") == "chunked"
        # The first chunk arrives while the producer still waits: nothing is buffered.
        assert response.readline() == b"line 0\n"
        conn.close()
        second.set()
        assert closed.wait(10), "the producer went on after the client left"
    finally:
        server.stop()
