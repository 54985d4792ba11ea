"""The pod watch of one namespace, turned into committed task transitions.

The watch position lives in the database, not in memory (Airflow keeps it in a
process-wide singleton and loses it on every restart): each batch of events is applied
through ``UpdateSink.apply`` with the resourceVersion of its last event, in one
transaction, so a restarted controller resumes exactly after the last event whose
effects were committed. Bookmarks advance the cursor too, so a quiet namespace does not
leave it to age out of the server's history.

Two threads per namespace: one reads the stream (so a slow commit never makes the API
server buffer for us), one gathers what arrives, up to a batch, and commits it (group
commit). It gathers for at most ``linger`` seconds after the first event of a batch: a
burst of thousands of events, which arrive a few at a time, thus costs a few
transactions, not thousands (each costs the controller CPU that the API server, on the
same nodes, would rather have), while a single event waits no longer than ``linger``.

When history since the cursor is gone (410, as an error or an ERROR event), the
namespace is listed and reconciled and the watch resumes from the list's resourceVersion.

`request_pass` asks for a full reconcile soon, not at the next interval: the engine
hands out its LAUNCHED tries again after it recovered from an error, and a try claimed
just before the error may have no pod yet; a pass that begins after the request finds
it missing and creates it. A pass already begun after the request covers it, so a burst
of requests costs one pass.

The first thing the thread does is a full reconcile of the namespace (what the pods
say, committed without moving the cursor, so the watch then replays harmlessly or hits
410 and lists again). It runs here, not in `start`, so that a controller restarting
beside thousands of live pods launches new work while the list is still being read.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass

from kubernetes import client

from controller.base.backoff import Backoff
from controller.executor.observer import NO_OBSERVER, ExecutorObserver
from controller.executor.reconciler import Observation, Reconciler
from controller.executor.watchstream import PodWatch, WatchEvent, WatchExpiredError
from controller.store import Store

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 500
# Far below the hop from an upstream's success to its downstream's pod (tens of ms on an
# idle control plane), yet long enough to gather a burst's events into one transaction.
DEFAULT_LINGER = 0.02
# Restarts after unexpected failures back off up to this; the watch is the controller's
# only source of results, so it keeps trying, and says so in its counters and logs.
RESTART_BACKOFF = Backoff(base=0.5, cap=30.0, max_attempts=None, max_elapsed=None)
JOIN_TIMEOUT = 10.0


@dataclass
class WatchStats:
    """Counters for metrics; written by the watcher thread only."""

    events: int = 0
    batches: int = 0
    restarts: int = 0
    expired: int = 0
    """Times the server answered 410 Gone and the namespace was listed again."""
    reconciles: int = 0


@dataclass(frozen=True)
class _StreamEnded:
    error: BaseException | None


@dataclass(frozen=True)
class _PassRequested:
    at: float


class NamespaceWatcher:
    """Watch ``reconciler.namespace`` from the stored cursor until :meth:`stop`."""

    def __init__(
        self,
        api: client.ApiClient,
        store: Store,
        *,
        reconciler: Reconciler,
        label_selector: str,
        reconcile_interval: float,
        batch_size: int = DEFAULT_BATCH_SIZE,
        linger: float = DEFAULT_LINGER,
        server_timeout: int = 300,
        observer: ExecutorObserver = NO_OBSERVER,
    ) -> None:
        self._api = api
        self._store = store
        self.reconciler = reconciler
        self.namespace = reconciler.namespace
        self._selector = label_selector
        self._interval = reconcile_interval
        self._batch_size = batch_size
        self._linger = linger
        self._server_timeout = server_timeout
        self._observer = observer
        self._stopped = threading.Event()
        self._watch: PodWatch | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._events: queue.Queue[WatchEvent | _StreamEnded | _PassRequested] | None = None
        self._pass_began = 0.0
        """When the latest full pass began (monotonic): it covers requests made before."""
        self._pass_wanted = 0.0
        """When the latest pass was requested (monotonic)."""
        self.stats = WatchStats()
        self.healthy = False

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"watch-{self.namespace}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            watch = self._watch
        if watch is not None:
            watch.stop()
        if self._thread is not None:
            self._thread.join(JOIN_TIMEOUT)

    def request_pass(self) -> None:
        """Reconcile the namespace soon (once a pass begun after now has run)."""
        with self._lock:
            self._pass_wanted = time.monotonic()
            events = self._events
        if events is not None:
            events.put(_PassRequested(self._pass_wanted))

    def _full_pass(self, *, resume: bool) -> str:
        with self._lock:
            self._pass_began = time.monotonic()
        self.stats.reconciles += 1
        return self.reconciler.full_pass(resume=resume)

    def _pass_due(self) -> bool:
        with self._lock:
            return self._pass_wanted > self._pass_began

    def _run(self) -> None:
        failures = 0
        reconciled = False
        while not self._stopped.is_set():
            try:
                if not reconciled:
                    self._reconcile_at_start()
                    reconciled = True
                self._watch_from_cursor()
                failures = 0
            except Exception as error:
                self.healthy = False
                self.stats.restarts += 1
                self._observer.watch_restarted()
                failures += 1
                pause = RESTART_BACKOFF.delay(failures)
                log.warning(
                    "pod watch in %s failed (%s); starting again in %.1fs",
                    self.namespace,
                    error,
                    pause,
                    exc_info=not isinstance(error, OSError),
                )
                self._stopped.wait(pause)

    def _reconcile_at_start(self) -> None:
        with self._store.transaction() as uow:
            cursor = uow.get_cursor(self.namespace)
        if cursor is not None:  # without one, the watch lists and reconciles first anyway
            self._full_pass(resume=False)

    def _watch_from_cursor(self) -> None:
        with self._store.transaction() as uow:
            cursor = uow.get_cursor(self.namespace)
        if cursor is None:
            cursor = self._relist()
        last_pass = time.monotonic()
        while not self._stopped.is_set():
            watch = PodWatch(
                self._api,
                namespace=self.namespace,
                label_selector=self._selector,
                resource_version=cursor,
                server_timeout=self._server_timeout,
                observer=self._observer,
            )
            with self._lock:
                self._watch = watch
            if self._stopped.is_set():
                return
            ended, last_pass = self._consume(watch, last_pass)
            if ended is None:
                return
            if isinstance(ended, WatchExpiredError):
                self.stats.expired += 1
                self._observer.watch_expired()
                log.info(
                    "the watch cursor of %s is too old (%s); listing again",
                    self.namespace,
                    ended,
                )
                cursor = self._relist()
                last_pass = time.monotonic()
                continue
            raise ended

    def _relist(self) -> str:
        return self._full_pass(resume=True)

    def _consume(self, watch: PodWatch, last_pass: float) -> tuple[BaseException | None, float]:
        """Apply the stream's events until it ends; returns why it ended, and the pass time."""
        events: queue.Queue[WatchEvent | _StreamEnded | _PassRequested] = queue.Queue()
        with self._lock:
            self._events = events
        reader = threading.Thread(
            target=_pump, args=(watch, events), name=f"watch-read-{self.namespace}", daemon=True
        )
        reader.start()
        self.healthy = True
        try:
            while True:
                if self._pass_due():
                    # Asked for while no stream was read, or while the last batch was.
                    self._full_pass(resume=False)
                    last_pass = time.monotonic()
                wait = max(0.0, self._interval - (time.monotonic() - last_pass))
                try:
                    first = events.get(timeout=wait)
                except queue.Empty:
                    self._full_pass(resume=False)
                    last_pass = time.monotonic()
                    continue
                batch: list[WatchEvent] = []
                item: WatchEvent | _StreamEnded | _PassRequested = first
                gather_until = time.monotonic() + self._linger
                while isinstance(item, WatchEvent):
                    batch.append(item)
                    if len(batch) >= self._batch_size:
                        break
                    try:
                        item = events.get(timeout=max(0.0, gather_until - time.monotonic()))
                    except queue.Empty:
                        break
                if batch:
                    self._commit(batch)
                if isinstance(item, _StreamEnded):
                    return item.error, last_pass
        finally:
            with self._lock:
                self._events = None
            watch.stop()
            reader.join(JOIN_TIMEOUT)

    def _commit(self, batch: list[WatchEvent]) -> None:
        observations = [
            Observation(event.pod, deleted=event.type == "DELETED")
            for event in batch
            if event.pod is not None
        ]
        self.reconciler.apply(observations, cursor=batch[-1].resource_version)
        self.stats.events += len(batch)
        self.stats.batches += 1


def _pump(watch: PodWatch, events: queue.Queue[WatchEvent | _StreamEnded | _PassRequested]) -> None:
    try:
        for event in watch:
            events.put(event)
    except BaseException as error:
        events.put(_StreamEnded(error))
    else:
        events.put(_StreamEnded(None))
