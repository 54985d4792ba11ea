"""Leader election on a coordination.k8s.io/v1 Lease, so only one replica launches pods.

The semantics follow client-go's ``leaderelection`` package; the traps it avoids are the
ones that make two replicas believe they lead at once:

- Clock skew. Whether another holder's lease has expired is never judged by comparing
  its ``renewTime`` with our wall clock. A candidate remembers, on its own monotonic
  clock, when it last saw the lease record *change*; the lease is expired only when it
  has not changed for ``leaseDurationSeconds`` since then. Remote clocks can be wrong by
  any amount; only the *rate* of time has to agree between replicas.
- Stopping too late. A leader that cannot renew stops leading ``renew_deadline`` seconds
  after the start of its last successful renewal, which is strictly earlier than the
  earliest moment any other replica can see the lease expire (``lease_duration`` after
  it saw that renewal). Every API call's timeout is cut to the time left before that
  deadline, ``is_leader`` turns false at the deadline even while a call is in flight,
  and ``on_stopped_leading`` runs before the lease is released.
- Lost updates. Every write carries the ``resourceVersion`` that was read; a 409
  Conflict means another replica wrote first, and the record is read again.
- Starvation. The Lease is read and written through `executor.lease.LeaseClient`, over a
  connection pool of its own with urllib3 retries off, so a launcher saturating the
  shared pool cannot delay renewals, and a retried request cannot silently run past
  the deadline.

A graceful stop releases the lease (empty ``holderIdentity``), so a standby takes over
on its next poll instead of waiting for the lease to expire. After losing the lease the
elector campaigns again; ``on_stopped_leading`` must have stopped all leader work first.

A replica that cannot reach the Lease only logs and retries, so every failed call is
also told to ``on_api_error`` (its HTTP status, None when no answer came back) for the
metrics; the 404 of a Lease not yet created and the 409 of a lost race are how the
protocol works, not failures.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from controller.base.backoff import Backoff
from controller.executor.kubeclient import ApiClient, describe_api_exception, read_error
from controller.executor.lease import LeaseClient, LeaseRecord, StoredLease
from controller.settings.model import LEASE_JITTER

log = logging.getLogger(__name__)

# Shortest request timeout worth sending; below it a call cannot succeed anyway.
_MIN_REQUEST_TIMEOUT = 0.05


class LeaderElector:
    """Campaigns for one Lease from a background thread and reports leadership changes.

    ``on_started_leading`` and ``on_stopped_leading`` run on the elector's thread and
    must return promptly (set a flag, start or signal threads): while they run, the
    lease is not renewed.
    """

    def __init__(
        self,
        api_client: ApiClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        on_started_leading: Callable[[], None],
        on_stopped_leading: Callable[[], None],
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        request_timeout: float = 5.0,
        on_api_error: Callable[[int | None], None] = lambda status: None,
    ) -> None:
        if not identity:
            raise ValueError("leader election identity must not be empty")
        if lease_duration < 1:
            raise ValueError("lease_duration must be at least 1 second (the Lease holds seconds)")
        if not 0 < renew_deadline < lease_duration:
            raise ValueError(
                f"renew_deadline ({renew_deadline}s) must be shorter than lease_duration "
                f"({lease_duration}s): a leader that cannot renew must stop leading before "
                "another replica may take the lease over"
            )
        if not 0 < retry_period * LEASE_JITTER < renew_deadline:
            raise ValueError(
                f"retry_period ({retry_period}s) times {LEASE_JITTER} must be positive and "
                f"shorter than renew_deadline ({renew_deadline}s), or a single missed "
                "renewal would end leadership"
            )
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self._lease_duration = lease_duration
        self._lease_seconds = math.ceil(lease_duration)
        self._renew_deadline = renew_deadline
        self._retry_period = retry_period
        self._request_timeout = request_timeout
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading
        self._on_api_error = on_api_error
        self._lease = LeaseClient(api_client, namespace=namespace, name=name)
        # After a failed round: the first pause is one to two retry periods, and no pause
        # outlasts a lease, so a replica notices a free lease within one lease duration.
        self._backoff = Backoff(
            base=2 * retry_period,
            cap=max(lease_duration, 2 * retry_period),
            max_attempts=None,
            max_elapsed=None,
        )

        self._lock = threading.Lock()
        self._leading = False
        self._leading_until = 0.0  # monotonic; meaningful only while leading
        self._observed: LeaseRecord | None = None
        self._observed_at = 0.0  # monotonic time the observed record last changed
        self._last_contact = -math.inf  # monotonic time of the last answered API call
        self._stop = threading.Event()
        self._release_on_stop = True
        self._thread: threading.Thread | None = None

    # -- public surface -------------------------------------------------------------

    @property
    def _key(self) -> tuple[str, str]:
        return self.namespace, self.name

    @property
    def is_leader(self) -> bool:
        """True while this replica holds the lease and its renew deadline has not passed."""
        with self._lock:
            return self._leading and time.monotonic() < self._leading_until

    @property
    def observed_leader(self) -> str:
        """The holder named by the lease as last read ('' when released or never read)."""
        with self._lock:
            return self._observed.holder if self._observed else ""

    def readiness(self) -> tuple[bool, str]:
        """A readiness check: leading, or a standby that can reach the API server."""
        with self._lock:
            silent_for = time.monotonic() - self._last_contact
        if self.is_leader:
            return True, f"leading as {self.identity}"
        if silent_for > self._lease_duration:
            return False, "lease not read for longer than the lease duration"
        return True, f"standby; leader is {self.observed_leader or 'nobody'}"

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("LeaderElector already started")
        self._thread = threading.Thread(
            target=self._run, name=f"leader-election-{self.name}", daemon=True
        )
        self._thread.start()

    def stop(self, *, release: bool = True, timeout: float | None = None) -> None:
        """Stop campaigning; if leading, stop leading and (by default) release the lease.

        ``release=False`` leaves the lease to expire, as a crash would.
        """
        self._release_on_stop = release
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout if timeout is not None else self._lease_duration * 2)

    # -- the loop -------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        try:
            while not self._stop.is_set():
                if self._leading:
                    self._renew_once()
                    continue
                acquired = self._try_acquire_or_renew()
                if acquired is None:
                    failures += 1
                    self._stop.wait(self._backoff.delay(failures))
                elif acquired:
                    failures = 0
                    self._start_leading()
                else:
                    failures = 0
                    self._stop.wait(self._jittered(self._retry_period))
        finally:
            if self._leading:
                self._stop_leading("elector stopped")
                if self._release_on_stop:
                    self._release()
            self._lease.close()

    def _renew_once(self) -> None:
        renewed = self._try_acquire_or_renew()
        if renewed:
            self._stop.wait(self._retry_period)
            return
        if renewed is False and self._observed and self._observed.holder != self.identity:
            self._stop_leading(f"lease taken by {self._observed.holder!r}")
            return
        remaining = self._remaining()
        if remaining <= _MIN_REQUEST_TIMEOUT:
            self._stop_leading(f"lease not renewed within {self._renew_deadline:g}s")
            return
        self._stop.wait(min(self._jittered(self._retry_period / 2), remaining))

    def _start_leading(self) -> None:
        log.info("became leader of lease %s/%s as %s", *self._key, self.identity)
        try:
            self._on_started()
        except Exception:
            log.exception("on_started_leading failed; giving the lease up")
            self._stop_leading("on_started_leading failed")
            self._release()
            self._stop.wait(self._jittered(self._retry_period))

    def _stop_leading(self, reason: str) -> None:
        with self._lock:
            self._leading = False
        log.warning("stopped leading lease %s/%s: %s", *self._key, reason)
        try:
            self._on_stopped()
        except Exception:
            log.exception("on_stopped_leading failed")

    # -- one round against the API server -------------------------------------------

    def _try_acquire_or_renew(self) -> bool | None:
        """True: we hold the lease now. False: someone else does. None: the API failed."""
        attempt_started = time.monotonic()
        try:
            stored = self._read()
            if stored is None:
                mine = self._record_for_acquire(None)
                self._create(mine)
                self._won(attempt_started, mine)
                return True
            record = stored.record
            self._observe(record)
            if record.holder and record.holder != self.identity and self._observed_is_valid(record):
                return False
            mine = self._record_for_acquire(record)
            self._replace(stored, mine)
            self._won(attempt_started, mine)
            return True
        except Exception as exc:
            error = read_error(exc)
            if error.status == 409:
                log.debug("lease %s/%s written by another replica; re-reading", *self._key)
                return False
            self._on_api_error(error.status)
            if error.status is None:
                log.warning("lease %s/%s: API unreachable: %s", *self._key, error.message)
            else:
                log.warning("lease %s/%s: %s", *self._key, describe_api_exception(exc))
            return None

    def _read(self) -> StoredLease | None:
        try:
            stored = self._lease.read(timeout=self._call_timeout())
        except Exception as exc:
            if read_error(exc).status == 404:
                self._contacted()
                return None
            raise
        self._contacted()
        return stored

    def _create(self, record: LeaseRecord) -> None:
        self._lease.create(record, timeout=self._call_timeout())
        self._contacted()

    def _replace(self, stored: StoredLease, record: LeaseRecord) -> None:
        self._lease.replace(stored, record, timeout=self._call_timeout())
        self._contacted()

    def _release(self) -> None:
        """Hand the lease back so a standby need not wait for it to expire."""
        try:
            stored = self._lease.read(timeout=self._request_timeout)
            record = stored.record
            if record.holder != self.identity:
                return
            now = datetime.now(UTC)
            released = LeaseRecord(
                holder="",
                lease_duration_seconds=1,
                acquire_time=now,
                renew_time=now,
                transitions=record.transitions,
            )
            self._lease.replace(stored, released, timeout=self._request_timeout)
            log.info("released lease %s/%s", *self._key)
        except Exception as exc:
            error = read_error(exc)
            self._on_api_error(error.status)
            # Not fatal: the lease then expires on its own after its duration.
            log.warning(
                "could not release lease %s/%s: %s",
                *self._key,
                describe_api_exception(exc) or error.message,
            )

    # -- bookkeeping ----------------------------------------------------------------

    def _record_for_acquire(self, current: LeaseRecord | None) -> LeaseRecord:
        now = datetime.now(UTC)
        if current is not None and current.holder == self.identity:
            return LeaseRecord(
                holder=self.identity,
                lease_duration_seconds=self._lease_seconds,
                acquire_time=current.acquire_time or now,
                renew_time=now,
                transitions=current.transitions,
            )
        return LeaseRecord(
            holder=self.identity,
            lease_duration_seconds=self._lease_seconds,
            acquire_time=now,
            renew_time=now,
            transitions=0 if current is None else current.transitions + 1,
        )

    def _observe(self, record: LeaseRecord) -> None:
        with self._lock:
            if record != self._observed:
                self._observed = record
                self._observed_at = time.monotonic()

    def _observed_is_valid(self, record: LeaseRecord) -> bool:
        # The holder's promise is in the record; our own setting stands in when it is unset.
        seconds = record.lease_duration_seconds or self._lease_seconds
        return time.monotonic() < self._observed_at + seconds

    def _won(self, attempt_started: float, record: LeaseRecord) -> None:
        """Our write landed: leadership lasts renew_deadline from when the write began."""
        with self._lock:
            self._leading_until = attempt_started + self._renew_deadline
            self._leading = True
            self._observed = record
            self._observed_at = time.monotonic()

    def _contacted(self) -> None:
        with self._lock:
            self._last_contact = time.monotonic()

    def _remaining(self) -> float:
        with self._lock:
            return self._leading_until - time.monotonic()

    def _call_timeout(self) -> float:
        if not self._leading:
            return self._request_timeout
        return max(_MIN_REQUEST_TIMEOUT, min(self._request_timeout, self._remaining()))

    def _jittered(self, period: float) -> float:
        return period + random.uniform(0, period * LEASE_JITTER)  # noqa: S311
