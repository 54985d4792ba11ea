"""Leader election against the real local control plane, with short durations.

A sampler thread watches every candidate's ``is_leader`` during each test and the test
fails if two ever answer true at once: the invariant that matters across handovers.
"""

from __future__ import annotations

import contextlib
import copy
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from urllib.parse import urlparse

import pytest
from kubernetes import client

from controller.process.leader import LeaderElector

pytestmark = pytest.mark.cluster

LEASE = "kubedag-leader"
LEASE_DURATION = 2.0
RENEW_DEADLINE = 1.5
RETRY_PERIOD = 0.3


class Candidate:
    """One replica: an elector and the times its callbacks ran."""

    def __init__(self, api: client.ApiClient, *, namespace: str, identity: str) -> None:
        self.identity = identity
        self.started: list[float] = []
        self.stopped: list[float] = []
        self.elector = LeaderElector(
            api,
            namespace=namespace,
            name=LEASE,
            identity=identity,
            lease_duration=LEASE_DURATION,
            renew_deadline=RENEW_DEADLINE,
            retry_period=RETRY_PERIOD,
            request_timeout=1.0,
            on_started_leading=lambda: self.started.append(time.monotonic()),
            on_stopped_leading=lambda: self.stopped.append(time.monotonic()),
        )


class Sampler:
    """Samples all candidates' is_leader every few milliseconds, recording overlaps."""

    def __init__(self) -> None:
        self.candidates: list[Candidate] = []
        self.overlaps: list[list[str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.002):
            leaders = [c.identity for c in list(self.candidates) if c.elector.is_leader]
            if len(leaders) > 1:
                self.overlaps.append(leaders)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture
def sampler() -> Iterator[Sampler]:
    watching = Sampler()
    try:
        yield watching
    finally:
        for candidate in watching.candidates:
            candidate.elector.stop(release=False, timeout=5)
        watching.close()
    assert watching.overlaps == [], "two candidates led at once"


@pytest.fixture
def candidate(kube: client.ApiClient, namespace: str, sampler: Sampler) -> Callable[..., Candidate]:
    def make(identity: str, *, api: client.ApiClient | None = None) -> Candidate:
        made = Candidate(api or kube, namespace=namespace, identity=identity)
        sampler.candidates.append(made)
        made.elector.start()
        return made

    return make


def wait_for(condition: Callable[[], bool], *, timeout: float) -> float:
    """Seconds until condition() held; fails the test after timeout."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(0.005)
    return time.monotonic() - started


def read_lease(kube: client.ApiClient, namespace: str) -> client.V1LeaseSpec:
    lease = client.CoordinationV1Api(kube).read_namespaced_lease(
        LEASE, namespace, _request_timeout=5
    )
    assert lease.spec is not None
    return lease.spec


def test_renew_deadline_must_be_shorter_than_the_lease_duration() -> None:
    with pytest.raises(ValueError, match=r"renew_deadline .* must be shorter than lease_duration"):
        LeaderElector(
            client.ApiClient(),
            namespace="default",
            name=LEASE,
            identity="a",
            lease_duration=10.0,
            renew_deadline=10.0,
            on_started_leading=lambda: None,
            on_stopped_leading=lambda: None,
        )


def test_one_of_two_candidates_leads_and_keeps_leading(
    kube: client.ApiClient, namespace: str, candidate: Callable[..., Candidate]
) -> None:
    a, b = candidate("a"), candidate("b")
    wait_for(lambda: a.elector.is_leader or b.elector.is_leader, timeout=5)
    leader, standby = (a, b) if a.elector.is_leader else (b, a)
    # Proven by an event, not a pause: a renewal more than two lease durations after the
    # lease was taken shows it never lapsed, so the standby could never take it.
    acquired = read_lease(kube, namespace).acquire_time
    wait_for(
        lambda: (
            (read_lease(kube, namespace).renew_time - acquired).total_seconds() > LEASE_DURATION * 2
        ),
        timeout=LEASE_DURATION * 6,
    )
    assert leader.elector.is_leader
    assert not standby.elector.is_leader
    assert leader.started
    assert not leader.stopped
    assert not standby.started
    assert read_lease(kube, namespace).holder_identity == leader.identity
    assert standby.elector.observed_leader == leader.identity
    assert standby.elector.readiness() == (True, f"standby; leader is {leader.identity}")


def test_a_graceful_stop_releases_the_lease_and_the_standby_takes_over_at_once(
    kube: client.ApiClient, namespace: str, candidate: Callable[..., Candidate]
) -> None:
    a = candidate("a")
    wait_for(lambda: a.elector.is_leader, timeout=5)
    b = candidate("b")
    wait_for(lambda: b.elector.observed_leader == "a", timeout=5)

    a.elector.stop(release=True)
    assert a.stopped, "on_stopped_leading ran before stop() returned"
    handover = wait_for(lambda: b.elector.is_leader, timeout=LEASE_DURATION * 2)
    # At most one jittered poll, far less than waiting for the lease to expire.
    assert handover < RETRY_PERIOD * 2.2 + 0.5 < LEASE_DURATION
    assert b.started[0] > a.stopped[0]
    spec = read_lease(kube, namespace)
    assert spec.holder_identity == "b"
    assert spec.lease_transitions == 1


def test_a_crashed_leader_is_replaced_within_the_lease_duration(
    namespace: str, candidate: Callable[..., Candidate]
) -> None:
    a = candidate("a")
    wait_for(lambda: a.elector.is_leader, timeout=5)
    b = candidate("b")
    wait_for(lambda: b.elector.observed_leader == "a", timeout=5)

    a.elector.stop(release=False)
    handover = wait_for(lambda: b.elector.is_leader, timeout=LEASE_DURATION * 3)
    # The lease was left to expire: the standby waited for it, timed from when it saw
    # the last renewal (up to one jittered poll late), and noticed the expiry on its next
    # poll, so no longer than the lease duration plus two polls.
    assert handover > LEASE_DURATION - RETRY_PERIOD * 2
    assert handover < LEASE_DURATION + 2 * RETRY_PERIOD * 2.2 + 0.5


def test_a_leader_cut_off_from_the_api_stops_before_its_lease_can_expire(
    kube: client.ApiClient, candidate: Callable[..., Candidate]
) -> None:
    with TcpProxy(api_server_address(kube)) as proxy:
        a = candidate("a", api=client_through(kube, proxy.port))
        wait_for(lambda: a.elector.is_leader, timeout=5)
        b = candidate("b")
        wait_for(lambda: b.elector.observed_leader == "a", timeout=5)

        proxy.cut()
        cut_at = time.monotonic()
        wait_for(lambda: bool(b.started), timeout=LEASE_DURATION * 3)

    assert a.stopped, "the cut-off leader never stopped leading"
    assert a.stopped[0] < b.started[0]
    assert a.stopped[0] - cut_at <= RENEW_DEADLINE + 0.2
    assert not a.elector.is_leader
    # Cut off for longer than a lease duration, it is no useful standby either.
    wait_for(lambda: not a.elector.readiness()[0], timeout=LEASE_DURATION + 1)
    assert a.elector.readiness() == (
        False,
        "lease not read for longer than the lease duration",
    )


def test_a_leader_that_sees_another_holder_steps_down_at_once(
    kube: client.ApiClient, namespace: str, candidate: Callable[..., Candidate]
) -> None:
    a = candidate("a")
    wait_for(lambda: a.elector.is_leader, timeout=5)
    api = client.CoordinationV1Api(kube)
    # The leader renews every retry period; a renewal between our read and our write
    # answers 409, and we read again as any writer of a Lease must.
    for _ in range(20):
        lease = api.read_namespaced_lease(LEASE, namespace, _request_timeout=5)
        assert lease.spec is not None
        lease.spec.holder_identity = "operator-override"
        lease.spec.renew_time = datetime.now(UTC).replace(microsecond=123456)
        try:
            api.replace_namespaced_lease(LEASE, namespace, lease, _request_timeout=5)
            break
        except client.ApiException as error:
            if error.status != 409:
                raise
    else:
        pytest.fail("the lease kept changing under the override")

    wait_for(lambda: bool(a.stopped), timeout=RETRY_PERIOD * 2 + 1)
    assert not a.elector.is_leader
    assert len(a.stopped) == 1
    assert a.elector.observed_leader == "operator-override"


def test_never_two_leaders_across_repeated_handovers(
    namespace: str, candidate: Callable[..., Candidate], sampler: Sampler
) -> None:
    pool = [candidate(name) for name in ("a", "b", "c")]
    for round_number in range(4):
        wait_for(lambda: any(c.elector.is_leader for c in pool), timeout=LEASE_DURATION * 3)
        leader = next(c for c in pool if c.elector.is_leader)
        # Alternate graceful stops and crashes; the stopped one comes back as a new replica.
        leader.elector.stop(release=round_number % 2 == 0)
        pool.remove(leader)
        pool.append(candidate(f"{leader.identity}{round_number}"))
    wait_for(lambda: any(c.elector.is_leader for c in pool), timeout=LEASE_DURATION * 3)
    assert sampler.overlaps == []


# -- a TCP proxy that can be cut, to take one replica off the network -----------------


def api_server_address(kube: client.ApiClient) -> tuple[str, int]:
    url = urlparse(kube.configuration.host)
    assert url.hostname is not None
    return url.hostname, url.port or 443


def client_through(kube: client.ApiClient, port: int) -> client.ApiClient:
    configuration = copy.deepcopy(kube.configuration)
    # The serving certificate names 127.0.0.1, whatever the port.
    configuration.host = f"https://127.0.0.1:{port}"
    # The kubeconfig loader's token hook rewrites host from the kubeconfig before every
    # request; the static token is already in api_key.
    configuration.refresh_api_key_hook = None
    return client.ApiClient(configuration=configuration)


class TcpProxy:
    """Forwards 127.0.0.1:port to the API server until cut: then refuses and drops all."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self._upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._cut = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cut()
        for thread in self._threads:
            thread.join(5)

    def cut(self) -> None:
        self._cut.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def _accept(self) -> None:
        while not self._cut.is_set():
            try:
                downstream, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(self._upstream, timeout=5)
            with self._lock:
                if self._cut.is_set():
                    downstream.close()
                    upstream.close()
                    return
                self._sockets += [downstream, upstream]
            pump = threading.Thread(target=self._pump, args=(downstream, upstream), daemon=True)
            self._threads.append(pump)
            pump.start()

    def _pump(self, one: socket.socket, other: socket.socket) -> None:
        peers = {one: other, other: one}
        while not self._cut.is_set():
            try:
                readable, _, _ = select.select(list(peers), [], [], 0.1)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
            except (OSError, ValueError):
                return
