"""Follow a git ref: fetch on an interval or on demand, publish each new commit.

The loop must survive the outside world. A repository that cannot be reached keeps the
last synced revision in place (the controller goes on scheduling the DAGs it has) and is
retried with exponential backoff and jitter, capped so recovery is noticed within
`backoff.cap` seconds; it never gives up, because a controller that stopped following
git would silently run stale DAGs forever. Instead its health (`status()`) shows the
last error, the number of consecutive failures and the age of the last success, for
/readyz and metrics.

`on_revision` is called from the loop thread for every revision not yet delivered; if it
raises, the same revision is offered again on the next round, so a loader bug or a
database hiccup never loses a commit.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from controller.gitsync.checkout import CheckoutStore, GitSyncError
from controller.gitsync.credentials import GitCredentials
from controller.gitsync.settings import GitSyncConfig
from controller.gitsync.webhook import WebhookError, push_concerns_ref, verify_push

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyncResult:
    """One successful sync: the commit, where its DAGs are, and whether it is new.

    `dags_dir` is inside the revision's own directory, so it keeps showing this commit
    after later syncs (until pruned); `changed` compares with this object's last result.
    """

    revision: str
    dags_dir: Path
    changed: bool


@dataclass(frozen=True)
class SyncStatus:
    """The health of git-sync, for readiness checks and metrics.

    `revision` is what `current` points at on disk, so after a restart it names the
    previous process's revision until the first sync of this one succeeds.
    """

    revision: str | None
    last_success: datetime | None
    last_attempt: datetime | None
    last_error: str | None
    consecutive_failures: int

    @property
    def ready(self) -> bool:
        """At least one revision is checked out, so there are DAGs to serve."""
        return self.revision is not None


class GitSync:
    """Keeps `config.root/current` at the newest commit of the configured ref."""

    def __init__(
        self,
        config: GitSyncConfig,
        *,
        on_revision: Callable[[SyncResult], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self._credentials = GitCredentials(config.auth, state_dir=config.root.absolute() / "auth")
        self._store = CheckoutStore(config, self._credentials)
        self._on_revision = on_revision
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._sync_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_revision: str | None = None
        self._delivered: str | None = None
        self._last_success: datetime | None = None
        self._last_attempt: datetime | None = None
        self._last_error: str | None = None
        self._failures = 0

    @property
    def current_link(self) -> Path:
        """The symlink that always names a complete checkout of the latest revision."""
        return self._store.current_link

    def sync_once(self) -> SyncResult:
        """Fetch, check out and publish the ref's commit; raise GitSyncError on failure.

        On failure `current` keeps the last synced revision. Only the loop calls
        `on_revision`; a direct caller uses the returned result itself.
        """
        with self._sync_lock:
            now = datetime.now(UTC)
            with self._state_lock:
                self._last_attempt = now
            try:
                with self._store.locked():
                    result = self._sync()
            except GitSyncError as exc:
                self._record_failure(str(exc))
                raise
            except OSError as exc:
                message = self._credentials.scrub(f"updating the checkout failed: {exc}")
                self._record_failure(message)
                raise GitSyncError(message) from exc
            with self._state_lock:
                self._last_success = datetime.now(UTC)
                self._last_error = None
                self._failures = 0
            return result

    def status(self) -> SyncStatus:
        with self._state_lock:
            return SyncStatus(
                revision=self._store.current_revision(),
                last_success=self._last_success,
                last_attempt=self._last_attempt,
                last_error=self._last_error,
                consecutive_failures=self._failures,
            )

    def start(self) -> None:
        """Run the sync loop in a daemon thread; the first sync happens at once."""
        if self._thread is not None:
            raise RuntimeError("git-sync is already running")
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="kubedag-gitsync", daemon=True)
        self._thread.start()

    def stop(self, *, timeout: float = 30.0) -> None:
        """Stop the loop; waits up to `timeout` seconds for a running git command to end."""
        self._stopping.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                log.warning("git-sync did not stop within %.0f s", timeout)

    def trigger(self) -> None:
        """Sync now instead of at the end of the current wait (for push webhooks)."""
        self._wake.set()

    def _sync(self) -> SyncResult:
        store = self._store
        sha = store.fetch()
        if store.current_revision() != sha:
            store.checkout(sha)
            store.switch(sha)
            log.info("switched to revision %s", sha, extra={"revision": sha})
        store.prune()
        dags_dir = store.dags_dir(sha)
        with self._state_lock:
            changed = sha != self._last_revision
            self._last_revision = sha
        return SyncResult(revision=sha, dags_dir=dags_dir, changed=changed)

    def _record_failure(self, message: str) -> None:
        with self._state_lock:
            self._last_error = message
            self._failures += 1
            failures = self._failures
        log.warning(
            "git sync failed (%d in a row): %s",
            failures,
            message,
            extra={"consecutive_failures": failures},
        )

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                result = self.sync_once()
            except GitSyncError:
                with self._state_lock:
                    failures = self._failures
                delay = self.config.backoff.delay(failures, rng=self._rng)
            else:
                self._deliver(result)
                delay = self.config.interval
            self._wake.wait(delay)

    def _deliver(self, result: SyncResult) -> None:
        if self._on_revision is None or result.revision == self._delivered:
            return
        try:
            self._on_revision(result)
        except Exception:
            log.exception(
                "handling revision %s failed; it will be offered again",
                result.revision,
                extra={"revision": result.revision},
            )
            return
        self._delivered = result.revision

    def handle_webhook(
        self, headers: Mapping[str, str], body: bytes, *, secret: bytes
    ) -> tuple[int, str]:
        """Answer a push webhook: (HTTP status, one-line message); syncs at once if the
        push moved the followed ref."""
        try:
            event = verify_push(headers, body, secret=secret)
        except WebhookError as exc:
            if exc.kind == "unauthenticated":
                log.warning("refused a webhook request: %s", exc.reason)
                return 401, exc.reason
            if exc.kind == "not-push":
                return 200, f"ignored: {exc.reason}"
            return 400, exc.reason
        if not push_concerns_ref(event, self.config.ref):
            return 200, f"ignored: push to {event.ref}, following {self.config.ref}"
        self.trigger()
        log.info(
            "%s push to %s (%s) triggered a sync",
            event.provider,
            event.ref,
            event.after,
            extra={"revision": event.after},
        )
        return 202, f"sync triggered for {event.ref} at {event.after}"
