"""The controller process: git-sync, DAG sync, scheduler, engine, executor, HTTP, leadership.

Everything is built from one validated `Config` before anything starts, so a wrong
setting stops the process at once with a message instead of half-starting it. Then
the parts start in dependency order: HTTP first (probes answer while the rest comes up,
and /readyz says what is missing), git-sync, then leader election, whose callbacks start
and stop the leader's work (see `leadership`).

Shutdown is the reverse, and leaves worker pods alone: the engine stops launching, the
executor stops watching (the watch cursor already sits in the database with the states
it produced), the lease is released so a standby takes over at once, then git-sync and
HTTP stop and the database pool closes. Pods that were running keep running; the next
leader adopts them from their deterministic names.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from datetime import timedelta
from http import HTTPStatus

from controller.executor.kubeclient import ApiClient
from controller.executor.kubernetes import KubernetesExecutor, settings_from_config
from controller.gitsync import GitSync, SyncResult
from controller.logstore import LogStore
from controller.metrics import Metrics, StateCounts
from controller.notifications.follower import NotificationFollower
from controller.operations.retention import RetentionSchedule
from controller.process.dagsync import DagSync
from controller.process.http import HttpServer
from controller.process.leader import LeaderElector
from controller.process.leadership import LeaderParts, Leadership, Startable
from controller.process.observing import MetricsObserver
from controller.process.wiring import (
    StartupError,
    api_token,
    gitsync_config,
    kubernetes_client,
    leader_namespace,
    open_store,
    webhook_secret,
)
from controller.runtime.engine import Engine
from controller.runtime.scheduler import Scheduler
from controller.settings.model import Config, pod_policy
from controller.store import PUSH_CHANNEL, DagRecord, RequestListener, Store
from controller.ui.endpoints import UiEndpoints

log = logging.getLogger(__name__)

# How often the housekeeping loop looks at git-sync's status to count failures.
_WATCH_INTERVAL = 1.0
# Every this many of those, it looks whether an operator paused or unpaused a DAG.
_PAUSE_CHECK_TICKS = 5


class Controller:
    """One controller replica. `start`, then `stop` (or `run` until an event is set)."""

    def __init__(
        self,
        config: Config,
        *,
        migrate: bool = False,
        api: ApiClient | None = None,
    ) -> None:
        self.config = config
        self.metrics = Metrics()
        self.observer = MetricsObserver(self.metrics)
        self.store: Store = open_store(config, migrate=migrate)
        try:
            self._build(api)
        except BaseException:
            self.store.close()
            raise

    def _build(self, api: ApiClient | None) -> None:
        config = self.config
        git = gitsync_config(config)
        secret = webhook_secret(config)
        self.api = api or kubernetes_client(config, pool_maxsize=config.executor.workers + 8)
        self.log_store = LogStore(config.log_store_location)
        self.gitsync = GitSync(git, on_revision=self._on_revision)
        self.dagsync = DagSync(
            self.store,
            dags_path=git.dags_path,
            metrics=self.metrics,
            schedule=self,
            policy=pod_policy(config),
        )
        self.leadership = Leadership(
            build=self._leader_parts, list_dags=self._list_dags, on_leading=self._catch_up
        )
        self.elector: LeaderElector | None = None
        election = config.leader_election
        if election.enabled:
            self.elector = LeaderElector(
                self.api,
                namespace=leader_namespace(config),
                name=election.lease_name,
                identity=election.identity,
                on_started_leading=self._started_leading,
                on_stopped_leading=self._stopped_leading,
                lease_duration=election.lease_duration_seconds,
                renew_deadline=election.renew_deadline_seconds,
                retry_period=election.retry_period_seconds,
                on_api_error=self.observer.api_error,
            )
        checks = {"git synced": self._git_ready, "database reachable": self._database_ready}
        checks["leader or standby"] = self._leader_ready
        self.http = HttpServer(
            metrics=self.metrics,
            host=config.http_bind,
            port=config.http_port,
            readiness_checks=checks,
            webhook=(
                None
                if secret is None
                else lambda headers, body: self._webhook(headers, body, secret=secret)
            ),
            api=UiEndpoints(
                store=self.store,
                log_store=self.log_store,
                api=self.api,
                namespace=config.executor.namespaces[0],
                token=api_token(config),
                repo_url=git.repo_url,
                wake=self.leadership.wake,
                requests_pending=self.leadership.requests_pending,
                protect_reads=config.api_protect_reads,
            ).handle,
        )
        self.metrics.set_state_counts_source(self._state_counts)
        self.metrics.set_git_last_success_source(self._git_last_success)
        self._latest: SyncResult | None = None
        self._latest_lock = threading.Lock()
        self._stopped = threading.Event()
        self._housekeeper: threading.Thread | None = None
        self._push_listener: RequestListener | None = None

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        self._push_listener = self.store.listen_for_requests(
            self._push_elsewhere, channel=PUSH_CHANNEL
        )
        self.http.start()
        self.gitsync.start()
        self._housekeeper = threading.Thread(
            target=self._housekeeping, name="kubedag-housekeeping", daemon=True
        )
        self._housekeeper.start()
        if self.elector is not None:
            self.elector.start()
        else:
            self._started_leading()
        log.info(
            "controller %s started: following %s (%s, %s), HTTP on port %d",
            self.config.instance,
            self.gitsync.config.repo_url,
            self.gitsync.config.ref,
            self.gitsync.config.dags_path,
            self.http.port,
        )

    def stop(self, *, release: bool = True) -> None:
        """Stop launching, finish writes, release the lease; leave pods running."""
        self._stopped.set()
        if self.elector is not None:
            # Its step-down callback stops the leader's work before the lease is released.
            self.elector.stop(release=release)
        self.leadership.end()
        self.metrics.leader.set(0)
        self.gitsync.stop()
        if self._housekeeper is not None:
            self._housekeeper.join(_WATCH_INTERVAL * 2)
        self.http.stop()
        if self._push_listener is not None:
            self._push_listener.stop()
        self.store.close()
        log.info("controller stopped; worker pods keep running and are adopted on restart")

    def run(self, stop: threading.Event) -> int:
        """Run until `stop` is set; 1 if the leader's work could not start."""
        self.start()
        try:
            while not stop.wait(0.5):
                if self.leadership.failed is not None:
                    log.error("exiting: the leader's work failed to start")
                    return 1
            return 0
        finally:
            self.stop()

    @property
    def is_leader(self) -> bool:
        return self.leadership.leading

    # -- leadership ---------------------------------------------------------------

    def _started_leading(self) -> None:
        self.metrics.leader.set(1)
        self.leadership.begin()

    def _stopped_leading(self) -> None:
        self.metrics.leader.set(0)
        self.leadership.end()

    def _leader_parts(self) -> LeaderParts:
        config = self.config
        executor = KubernetesExecutor(
            self.api,
            self.store,
            settings=settings_from_config(
                config,
                repo_url=self.gitsync.config.repo_url,
                dags_path=self.gitsync.config.dags_path,
            ),
            log_store=self.log_store,
            observer=self.observer,
        )
        engine = Engine(
            self.store,
            executor,
            parallelism=config.executor.parallelism,
            max_infra_retries=config.executor.max_infra_retries,
            on_tries_finished=self.metrics.tries_finished,
        )
        scheduler = Scheduler(self.store, on_runs_created=engine.wake)
        follower = NotificationFollower(self.store, config.notifications, metrics=self.metrics)
        housekeeping: tuple[Startable, ...] = (follower,)
        if config.retention_older_than_seconds is not None:
            housekeeping += (
                RetentionSchedule(
                    self.store,
                    self.log_store,
                    older_than=timedelta(seconds=config.retention_older_than_seconds),
                    interval_seconds=config.retention_interval_seconds,
                ),
            )
        # The engine launches, so it stops first; the scheduler only queues runs.
        return LeaderParts(
            scheduler=scheduler,
            wake=engine.wake,
            requests_pending=engine.requests_pending,
            start_order=(engine, scheduler, *housekeeping),
            stop_order=(engine, scheduler, *housekeeping),
        )

    def _catch_up(self) -> None:
        """A new leader first applies the newest revision a standby only synced."""
        with self._latest_lock:
            latest = self._latest
        if latest is not None:
            self.dagsync.apply_revision(revision=latest.revision, dags_dir=latest.dags_dir)

    # -- git and DAG sync ---------------------------------------------------------

    def _webhook(
        self, headers: Mapping[str, str], body: bytes, *, secret: bytes
    ) -> tuple[int, str]:
        """A push webhook: this replica syncs, and a standby passes it on to the leader.

        The Service sends webhooks to every replica; a standby's own sync is only kept
        for when it leads, so without the notification the leader would wait for its
        next interval.
        """
        status, message = self.gitsync.handle_webhook(headers, body, secret=secret)
        if status == HTTPStatus.ACCEPTED and not self.leadership.leading:
            with self.store.transaction() as uow:
                uow.notify_git_push()
        return status, message

    def _push_elsewhere(self, _what: frozenset[str]) -> None:
        """A push webhook reached another replica (or the listener just connected)."""
        if self.leadership.leading:
            self.gitsync.trigger()

    def _on_revision(self, result: SyncResult) -> None:
        with self._latest_lock:
            self._latest = result
        if self.leadership.leading:
            self.dagsync.apply_revision(revision=result.revision, dags_dir=result.dags_dir)
        else:
            log.info(
                "standby synced revision %s; the leader applies it",
                result.revision,
                extra={"revision": result.revision},
            )

    def apply(self, dags: Iterable[DagRecord]) -> None:
        """DagSync's schedule sink: reaches the scheduler only while leading."""
        self.leadership.schedule(dags)

    def _list_dags(self) -> list[DagRecord]:
        with self.store.transaction() as uow:
            return uow.list_dags(include_deleted=True)

    def _housekeeping(self) -> None:
        seen_failures = 0
        # Empty, so the first look hands the scheduler the DAGs once whatever it finds: a
        # pause made while this replica started is not taken for the way things were.
        pauses: dict[str, bool] = {}
        ticks = 0
        while not self._stopped.wait(_WATCH_INTERVAL):
            failures = self.gitsync.status().consecutive_failures
            if failures > seen_failures:
                self.metrics.git_sync_errors.inc(failures - seen_failures)
            seen_failures = failures
            ticks += 1
            if ticks % _PAUSE_CHECK_TICKS == 0:
                pauses = self._follow_pauses(pauses)

    def _follow_pauses(self, seen: dict[str, bool]) -> dict[str, bool]:
        """Reschedule when a DAG was paused or unpaused outside git (`kubedag pause`).

        A pause needs no job change to take effect (a paused DAG's fire creates nothing),
        but an unpaused DAG has no job until the scheduler is given the DAGs again.
        """
        try:
            with self.store.transaction() as uow:
                pauses = uow.pause_states()
            if pauses != seen:
                self.leadership.schedule(self._list_dags())
        except Exception:
            log.warning("could not look for paused or unpaused DAGs", exc_info=True)
            return seen
        return pauses

    # -- health and metrics -------------------------------------------------------

    def _git_ready(self) -> tuple[bool, str]:
        status = self.gitsync.status()
        if status.revision is None:
            return False, status.last_error or "no revision synced yet"
        detail = f"at {status.revision[:12]}"
        if status.last_error:
            detail += f" ({status.consecutive_failures} failed syncs since: {status.last_error})"
        return True, detail

    def _database_ready(self) -> tuple[bool, str]:
        with self.store.transaction() as uow:
            uow.count_active_runs()
        return True, "ok"

    def _leader_ready(self) -> tuple[bool, str]:
        if self.elector is None:
            return True, "leader election disabled: this replica leads"
        return self.elector.readiness()

    def _state_counts(self) -> StateCounts:
        with self.store.transaction() as uow:
            oldest = uow.oldest_launch()
            return StateCounts(
                runs=uow.count_runs_by_state(),
                tasks=uow.count_task_instances_by_state(),
                oldest_pending_since=None if oldest is None else oldest.timestamp(),
            )

    def _git_last_success(self) -> float | None:
        last = self.gitsync.status().last_success
        return None if last is None else last.timestamp()


def build_controller(config: Config, *, migrate: bool) -> Controller:
    """The controller for `config`; StartupError names what to fix."""
    try:
        return Controller(config, migrate=migrate)
    except OSError as error:
        raise StartupError(str(error)) from error
