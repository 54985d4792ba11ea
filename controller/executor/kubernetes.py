"""The Kubernetes executor: worker pods out, committed results back, nothing lost on a crash.

It joins the pieces below it behind the engine's `Executor` seam: `launch` builds each
try's pod with the pure pod builder and hands it to the `Launcher` (concurrent creates,
AlreadyExists adopted); `start` runs, per watched namespace, a full reconcile and then a
`NamespaceWatcher` whose batches reach the store through the engine's `UpdateSink`, with
the watch cursor in the same transaction; finished pods go to the `PodCleaner` (logs,
finalizer, deletion policy) on a pool of their own, which waits while creates are
queued (at most ``cleanup_max_deferral`` per pod), so a burst of launches is not slowed
by cleaning up after it.

A created pod needs no write here: the watch reports it. Only a pod the API refused
(REJECTED, with the API's message) or could not be reached for (GAVE_UP) is reported as
an INFRA failure right away, so the planner's bound on infrastructure retries is what
keeps an invalid pod from being tried for ever.

After a restart, LAUNCHED rows whose pod never reached the API are launched again under
the same name, once the reconcile has listed the pods and found theirs missing; their
orders are rebuilt from the store with the planner, exactly as the engine built them
(same spec snapshot, same upstream results, so the same pod).

What the parts meet on the way (each launch's outcome and latency, watch restarts and
410s, failed API calls) is told to an `ExecutorObserver`, which the controller turns
into metrics.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from kubernetes import client

from controller.base import naming
from controller.base.states import FailureKind, TaskState
from controller.engine.seam import LaunchOrder, PodStop, TaskUpdate, UpdateSink
from controller.executor.cleanup import (
    DEFAULT_MAX_DEFERRAL,
    CleanupPolicy,
    PodCleaner,
    has_finalizer,
)
from controller.executor.launcher import (
    DEFAULT_BURST,
    DEFAULT_QPS,
    DEFAULT_WORKERS,
    Launcher,
    LaunchOutcome,
    LaunchRequest,
)
from controller.executor.observer import NO_OBSERVER, ExecutorObserver, LaunchStatus
from controller.executor.podmerge import load_pod_template
from controller.executor.podspec import PodConfig, PodIdentity, build_pod
from controller.executor.reconciler import Reconciler
from controller.executor.watcher import NamespaceWatcher
from controller.executor.watchstream import list_pods
from controller.logstore import LogStore
from controller.settings.model import Config, pod_policy
from controller.spec.loader import field_name
from controller.spec.podpolicy import PodPolicy, task_violations
from controller.store import Store, TaskInstanceRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ExecutorSettings:
    """What the executor needs from the controller's configuration."""

    pod: PodConfig
    """Pods are created in ``pod.namespace``; it is watched beside ``namespaces``."""
    instance: str = "kubedag"
    namespaces: tuple[str, ...] = ()
    workers: int = DEFAULT_WORKERS
    qps: float | None = DEFAULT_QPS
    burst: int = DEFAULT_BURST
    unschedulable_timeout: float = 300.0
    pending_timeout: float | None = 900.0
    """A pod not started this long after its creation fails its try (None: no limit)."""
    reconcile_interval: float = 60.0
    cleanup: CleanupPolicy = dataclasses.field(default_factory=CleanupPolicy)
    cleanup_workers: int = 4
    cleanup_max_deferral: float = DEFAULT_MAX_DEFERRAL
    pod_policy: PodPolicy | None = None
    """Checked on every try before its pod is built; None: no limits (pods created with
    the caller's own credentials, as `kubedag run` does)."""

    @property
    def watched_namespaces(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.pod.namespace, *self.namespaces)))

    @property
    def label_selector(self) -> str:
        instance = naming.label_value(self.instance)
        return f"{naming.MANAGED_SELECTOR},{naming.CONTROLLER_LABEL}={instance}"


def settings_from_config(config: Config, *, repo_url: str, dags_path: str) -> ExecutorSettings:
    """Executor settings from the controller's config; pods go to its first namespace."""
    executor = config.executor
    template = load_pod_template(executor.pod_template_file) if executor.pod_template_file else None
    pod = PodConfig(
        repo_url=repo_url,
        namespace=executor.namespaces[0],
        dags_path=dags_path,
        init_image=executor.init_image,
        git_secret_name=config.git.credentials_secret,
        git_secret_key=config.git.credentials_secret_key,
        git_username=config.git.credentials_username,
        security_defaults=executor.security_defaults,
        image_pull_policy=executor.image_pull_policy,
        pod_template=template,
        service_account_name=executor.service_account,
    )
    return ExecutorSettings(
        pod=pod,
        instance=config.instance,
        namespaces=executor.namespaces,
        workers=executor.workers,
        qps=executor.qps,
        burst=executor.burst,
        unschedulable_timeout=executor.unschedulable_timeout_seconds,
        pending_timeout=executor.pending_timeout_seconds or None,
        reconcile_interval=executor.reconcile_interval_seconds,
        cleanup=CleanupPolicy(
            delete_on_success=executor.delete_on_success,
            delete_on_failure=executor.delete_on_failure,
            ttl_seconds=executor.finished_pod_ttl_seconds,
        ),
        cleanup_max_deferral=executor.cleanup_max_deferral_seconds,
        pod_policy=pod_policy(config),
    )


class KubernetesExecutor:
    """Runs each try as a worker pod; see the module docstring.

    ``api`` must keep at least ``settings.workers`` connections
    (``make_api_client(pool_maxsize=...)``).
    """

    relaunches_itself = True
    """The startup reconcile lists the pods and relaunches the LAUNCHED tries without one."""

    def __init__(
        self,
        api: client.ApiClient,
        store: Store,
        *,
        settings: ExecutorSettings,
        log_store: LogStore,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        observer: ExecutorObserver = NO_OBSERVER,
    ) -> None:
        self._api = api
        self._store = store
        self.settings = settings
        self._clock = clock
        self._observer = observer
        # Pod names whose create has been sent and not yet answered. Cleanup never removes
        # such a pod, and a relaunch is only sent for a try still LAUNCHED after its name
        # is registered here: together, a finished and deleted pod is never created again.
        self._in_flight: set[str] = set()
        self._lock = threading.Lock()
        self._launcher = Launcher(
            api,
            workers=settings.workers,
            qps=settings.qps,
            burst=settings.burst,
            observer=observer,
        )
        self.cleaner = PodCleaner(
            api,
            log_store,
            policy=settings.cleanup,
            workers=settings.cleanup_workers,
            clock=clock,
            observer=observer,
            launches_waiting=self._launches_waiting,
            creating=self._creating,
            max_deferral=settings.cleanup_max_deferral,
        )
        self._sink: UpdateSink | None = None
        self.watchers: list[NamespaceWatcher] = []
        self.launched = 0
        self.launch_failures = 0

    def start(self, sink: UpdateSink) -> None:
        """Start, per namespace, a watcher that reconciles the namespace, then watches it.

        Returns at once: the startup reconcile lists every pod kubedag runs, which takes
        seconds with thousands of them, and the engine must not wait for it to launch
        new work. Pods created meanwhile are safe: a row the pass reads as LAUNCHED while
        its create is in flight is left alone, and any other relaunch is a create of the
        same name, adopted if it exists.
        """
        self._sink = sink
        for namespace in self.settings.watched_namespaces:
            reconciler = Reconciler(
                self._api,
                self._store,
                sink,
                namespace=namespace,
                label_selector=self.settings.label_selector,
                launch_namespace=self.settings.pod.namespace,
                unschedulable_timeout=self.settings.unschedulable_timeout,
                pending_timeout=self.settings.pending_timeout,
                cleaner=self.cleaner,
                relaunch=self._relaunch,
                in_flight=self._in_flight_names,
                clock=self._clock,
                observer=self._observer,
            )
            watcher = NamespaceWatcher(
                self._api,
                self._store,
                reconciler=reconciler,
                label_selector=self.settings.label_selector,
                reconcile_interval=self.settings.reconcile_interval,
                observer=self._observer,
            )
            self.watchers.append(watcher)
            watcher.start()

    def launch(self, orders: Sequence[LaunchOrder]) -> None:
        """Create the pods of new tries; relaunches are left to a reconcile.

        After it recovered from an error, the engine hands every LAUNCHED try out again
        (``relaunch``), among them tries it claimed but perhaps never handed over.
        Creating them all would post one create per live pod (each answered
        AlreadyExists) ahead of any new try's: work growing with the pods. The reconcile
        lists the pods first and relaunches only the LAUNCHED tries whose pod is
        missing: at start (so the engine hands out no relaunches then:
        ``relaunches_itself``), after a 410, every ``reconcile_interval``, and as soon
        as it can after relaunches are handed out here, so a claimed try's pod does not
        wait for the interval.
        """
        if any(order.relaunch for order in orders):
            for watcher in self.watchers:
                watcher.request_pass()
        self._submit([order for order in orders if not order.relaunch])

    def _submit(self, orders: Sequence[LaunchOrder]) -> None:
        # Launch latency counts from here: building pods and waiting for a launcher
        # worker are part of what a try waits for.
        reached = time.monotonic()
        with self._lock:
            # A name already being created (the engine and the startup reconcile both
            # relaunch LAUNCHED tries) is not sent twice.
            fresh = {
                order.pod_name: order for order in orders if order.pod_name not in self._in_flight
            }
            self._in_flight.update(fresh)
        for order in self._no_longer_launched([o for o in fresh.values() if o.relaunch]):
            with self._lock:
                self._in_flight.discard(order.pod_name)
            del fresh[order.pod_name]
        for order in fresh.values():
            try:
                body = self._pod(order)
            except ValueError as error:
                # A task the pod builder refuses (e.g. a workingDir outside the checkout)
                # will not build on a retry either; report it like a refused pod.
                with self._lock:
                    self._in_flight.discard(order.pod_name)
                refused = isinstance(error, PolicyRefusalError)
                reason = "RefusedByPolicy" if refused else "InvalidPod"
                self._report_failure(order.task_instance_id, reason, str(error))
                self._observer.pod_launched(LaunchStatus.REJECTED, time.monotonic() - reached)
                continue
            request = LaunchRequest(
                namespace=self.settings.pod.namespace, body=body, key=order.task_instance_id
            )
            self._launcher.submit(request, partial(self._launched, reached=reached))

    def _no_longer_launched(self, relaunches: Sequence[LaunchOrder]) -> list[LaunchOrder]:
        """The relaunches whose try is no longer LAUNCHED: their pod must not be made again.

        Read after the names are registered as in flight, so a try that finishes later
        cannot have its pod deleted before this create is answered.
        """
        if not relaunches:
            return []
        with self._store.transaction() as uow:
            states = {
                row.id: row.state
                for row in uow.get_task_instances([o.task_instance_id for o in relaunches])
            }
        return [o for o in relaunches if states.get(o.task_instance_id) is not TaskState.LAUNCHED]

    def cancel(self, stops: Sequence[PodStop]) -> None:
        for stop in stops:
            self.cleaner.terminate(
                namespace=stop.namespace or self.settings.pod.namespace,
                name=stop.pod_name,
                grace_seconds=stop.grace_seconds,
            )

    def results_stored(self, run_id: int | None = None) -> bool:
        """Whether no pod (of ``run_id``, or of any run) still holds the result finalizer.

        A pod keeps it until its result and logs are stored, so once a run has ended this
        is the point after which `kubedag logs` answers from the log store. The cleaner
        being idle is not: a try is finished in the store a moment before its pod is
        handed to the cleaner.
        """
        selector = self.settings.label_selector
        if run_id is not None:
            selector += f",{naming.RUN_ID_LABEL}={run_id}"
        for namespace in self.settings.watched_namespaces:
            pods, _ = list_pods(self._api, namespace=namespace, label_selector=selector)
            if any(has_finalizer(pod) for pod in pods):
                return False
        return True

    def stop(self) -> None:
        self._launcher.close(wait=True)
        for watcher in self.watchers:
            watcher.stop()
        self.cleaner.close(wait=True)

    def _pod(self, order: LaunchOrder) -> dict[str, Any]:
        policy = self.settings.pod_policy
        if policy is not None:
            task = order.task
            violations = task_violations(
                policy,
                env=order.rendered.env,
                env_from=task.env_from,
                pod_overrides=task.pod_overrides,
            )
            if violations:
                raise PolicyRefusalError(
                    f"task {task.name!r}: "
                    + "; ".join(f"{field_name(v.where)}: {v.message}" for v in violations)
                )
        identity = PodIdentity(
            dag=order.dag_name,
            key=order.key,
            revision=order.revision,
            controller=self.settings.instance,
            dag_file=order.dag_path,
        )
        body = build_pod(
            task=order.task, identity=identity, rendered=order.rendered, config=self.settings.pod
        )
        if body["metadata"]["name"] != order.pod_name:
            raise ValueError(
                f"the pod name {order.pod_name!r} recorded for this try does not match its "
                f"identity ({body['metadata']['name']!r})"
            )
        return body

    def _launched(self, outcome: LaunchOutcome, *, reached: float) -> None:
        self._observer.pod_launched(outcome.status, time.monotonic() - reached)
        with self._lock:
            self._in_flight.discard(outcome.request.pod_name)
        if outcome.status.launched:
            self.launched += 1
            return
        self.launch_failures += 1
        reason = "PodRejected" if outcome.status == "rejected" else "LaunchFailed"
        log.warning(
            "pod %s was not created: %s",
            outcome.request.pod_name,
            outcome.message,
            extra=_identity(outcome.request.body),
        )
        if isinstance(outcome.key, int):
            self._report_failure(outcome.key, reason, outcome.message)

    def _report_failure(self, ti_id: int, reason: str, message: str) -> None:
        if self._sink is None:
            raise RuntimeError("launch before start: the executor has nowhere to report")
        self._sink.apply(
            [
                TaskUpdate(
                    task_instance_id=ti_id,
                    state=TaskState.FAILED,
                    failure_kind=FailureKind.INFRA,
                    reason=reason,
                    message=message,
                    finished_at=self._clock(),
                )
            ]
        )

    def _launches_waiting(self) -> bool:
        return self._launcher.backlog > 0

    def _creating(self, name: str) -> bool:
        with self._lock:
            return name in self._in_flight

    def _in_flight_names(self) -> set[str]:
        with self._lock:
            return set(self._in_flight)

    def _relaunch(self, records: Sequence[TaskInstanceRecord]) -> None:
        if self._sink is None:
            raise RuntimeError("start the executor before it relaunches")
        self._submit(self._sink.relaunch_orders([record.id for record in records]))


class PolicyRefusalError(ValueError):
    """A try whose task asks for what the controller's pod policy refuses."""


def _identity(body: Any) -> dict[str, Any]:
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    return {
        "dag": annotations.get(naming.DAG_LABEL),
        "run": annotations.get(naming.RUN_ID_LABEL),
        "task": annotations.get(naming.TASK_LABEL),
        "item": annotations.get(naming.ITEM_LABEL),
        "try": annotations.get(naming.TRY_LABEL),
    }
