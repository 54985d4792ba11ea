"""What a worker pod says about its task try: pending, running, succeeded or failed, and why.

Pure: a pod is read as the plain JSON dict the API serves (camelCase keys), so the same
function serves watch events, list results and tests, with no kubernetes import.

The trap this avoids is Airflow's: treating "the pod failed" as "the task failed". Two
kinds of failure are kept apart because they are retried differently
(see :class:`~controller.base.states.FailureKind`):

- INFRA: the task's main container never started (image pull errors, bad container
  config, the git checkout init container failing, unschedulable past a timeout, the pod
  deleted or its node lost before start). The task's code did not run, so a fresh pod
  may try again without spending one of the task's retries.
- TASK: the main container ran and failed, or the pod's deadline passed after it started.
  A pod lost *after* the main container started is also TASK: its code may have had side
  effects, so a rerun must go through the task's own (bounded, user-chosen) retries.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from controller.base.states import FailureKind
from controller.executor.gitcheckout import CONTAINER_NAME as INIT_CONTAINER
from controller.executor.podspec import TASK_CONTAINER as MAIN_CONTAINER

# Waiting reasons after which the kubelet will not get the container running by itself
# within any useful time: the pod spec or the image reference is wrong.
INFRA_WAITING_REASONS = frozenset(
    {
        "ImagePullBackOff",
        "ErrImagePull",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "InvalidImageName",
    }
)
# The kubelet keeps at most the last 4096 bytes of a termination message
# (MaxContainerTerminationMessageLength), without saying it cut anything. A message
# of that length may be the tail of a longer one: never a result to pass on.
RESULT_LIMIT = 4096
# Pod-level reasons meaning the infrastructure, not the task, ended the pod.
LOST_POD_REASONS = frozenset({"NodeLost", "Evicted", "Shutdown", "NodeShutdown", "Terminated"})


class OutcomePhase(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (OutcomePhase.SUCCEEDED, OutcomePhase.FAILED)


@dataclass(frozen=True)
class PodOutcome:
    """One pod's verdict. ``result`` is the main container's termination message."""

    phase: OutcomePhase
    kind: FailureKind | None = None
    reason: str | None = None
    message: str | None = None
    exit_code: int | None = None
    result: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    node: str | None = None


def classify(
    pod: Mapping[str, Any],
    *,
    now: datetime,
    unschedulable_timeout: float,
    deleted: bool = False,
    pending_timeout: float | None = None,
) -> PodOutcome:
    """Classify ``pod``; ``deleted`` is True for a DELETED watch event or a vanished pod.

    A pod whose task has not started ``pending_timeout`` seconds after the pod was
    created (whatever holds it: a volume that never mounts, a hung checkout, an image
    that pulls for ever) fails as an infrastructure failure naming what it waits for.
    """
    status: Mapping[str, Any] = pod.get("status") or {}
    node = (pod.get("spec") or {}).get("nodeName") or None
    main = _container_status(status.get("containerStatuses"), MAIN_CONTAINER)
    init = _container_status(status.get("initContainerStatuses"), INIT_CONTAINER)
    main_state: Mapping[str, Any] = main.get("state") or {}
    running: Mapping[str, Any] | None = main_state.get("running")
    terminated: Mapping[str, Any] | None = main_state.get("terminated")
    started_at = _time((terminated or running or {}).get("startedAt"))
    started = running is not None or terminated is not None
    phase = status.get("phase")

    if phase == "Failed" and status.get("reason") == "DeadlineExceeded":
        return PodOutcome(
            phase=OutcomePhase.FAILED,
            kind=FailureKind.TASK if started else FailureKind.INFRA,
            reason="DeadlineExceeded",
            message=status.get("message") or "the task's timeout passed",
            exit_code=(terminated or {}).get("exitCode"),
            started_at=started_at,
            finished_at=_time((terminated or {}).get("finishedAt")),
            node=node,
        )
    if terminated is not None:
        return _from_terminated(terminated, node=node)
    if phase == "Succeeded":
        return PodOutcome(phase=OutcomePhase.SUCCEEDED, node=node)

    lost = _lost_reason(status, deleted=deleted)
    if lost is not None:
        reason, message = lost
        return PodOutcome(
            phase=OutcomePhase.FAILED,
            kind=FailureKind.TASK if started else FailureKind.INFRA,
            reason=reason,
            message=message,
            started_at=started_at,
            node=node,
        )
    if started:
        return PodOutcome(phase=OutcomePhase.RUNNING, started_at=started_at, node=node)

    infra = _infra_failure(status, init=init, now=now, timeout=unschedulable_timeout)
    if infra is not None:
        reason, message, exit_code = infra
        return PodOutcome(
            phase=OutcomePhase.FAILED,
            kind=FailureKind.INFRA,
            reason=reason,
            message=message,
            exit_code=exit_code,
            node=node,
        )
    if phase == "Failed":
        return PodOutcome(
            phase=OutcomePhase.FAILED,
            kind=FailureKind.INFRA,
            reason=status.get("reason") or "PodFailed",
            message=status.get("message") or "the pod failed before the task started",
            node=node,
        )
    created = _time((pod.get("metadata") or {}).get("creationTimestamp"))
    if pending_timeout and created is not None:
        waited = (now - created).total_seconds()
        if waited >= pending_timeout:
            return PodOutcome(
                phase=OutcomePhase.FAILED,
                kind=FailureKind.INFRA,
                reason="PendingTimeout",
                message=f"pending for {waited:.0f}s (limit {pending_timeout:g}s): "
                f"{_pending_cause(status, init=init)}",
                node=node,
            )
    return PodOutcome(phase=OutcomePhase.PENDING, node=node)


def _pending_cause(status: Mapping[str, Any], *, init: Mapping[str, Any]) -> str:
    """What a pod that has not started waits for, as far as its status says."""
    if (init.get("state") or {}).get("running") is not None:
        return f"the {INIT_CONTAINER} init container is still running"
    for container in (
        *(status.get("initContainerStatuses") or ()),
        *(status.get("containerStatuses") or ()),
    ):
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            detail = f" ({waiting['message']})" if waiting.get("message") else ""
            return f"container {container.get('name')} waiting: {waiting['reason']}{detail}"
    for condition in status.get("conditions") or ():
        if condition.get("status") == "False" and condition.get("reason"):
            detail = f": {condition['message']}" if condition.get("message") else ""
            return f"{condition.get('type')} is False ({condition['reason']}){detail}"
    if not status.get("phase") or not status.get("conditions"):
        return "no node has reported on it"
    return "it has not started"


def _from_terminated(terminated: Mapping[str, Any], *, node: str | None) -> PodOutcome:
    exit_code = terminated.get("exitCode")
    started_at = _time(terminated.get("startedAt"))
    finished_at = _time(terminated.get("finishedAt"))
    message = terminated.get("message")
    if exit_code == 0 and message is not None and len(message.encode()) >= RESULT_LIMIT:
        return PodOutcome(
            phase=OutcomePhase.FAILED,
            kind=FailureKind.TASK,
            reason="ResultTooLarge",
            message=(
                f"the task's result reached Kubernetes' {RESULT_LIMIT}-byte limit on a "
                "termination message, which keeps only its last bytes; write at most "
                f"{RESULT_LIMIT - 1} bytes (a summary, a count, an object key), not the data"
            ),
            exit_code=0,
            started_at=started_at,
            finished_at=finished_at,
            node=node,
        )
    if exit_code == 0:
        return PodOutcome(
            phase=OutcomePhase.SUCCEEDED,
            exit_code=0,
            result=message if message is not None else "",
            started_at=started_at,
            finished_at=finished_at,
            node=node,
        )
    return PodOutcome(
        phase=OutcomePhase.FAILED,
        kind=FailureKind.TASK,
        reason=terminated.get("reason") or "Error",
        message=message or f"the task exited with code {exit_code}",
        exit_code=exit_code,
        started_at=started_at,
        finished_at=finished_at,
        node=node,
    )


def _lost_reason(status: Mapping[str, Any], *, deleted: bool) -> tuple[str, str] | None:
    """Why the pod is gone or going without a verdict of its own, if it is."""
    reason = status.get("reason")
    if reason in LOST_POD_REASONS:
        return reason, status.get("message") or f"the pod was ended by the cluster ({reason})"
    if status.get("phase") == "Unknown":
        return "NodeLost", status.get("message") or "the pod's node stopped reporting"
    if deleted:
        return "PodDeleted", "the pod was deleted before it finished"
    return None


def _infra_failure(
    status: Mapping[str, Any],
    *,
    init: Mapping[str, Any],
    now: datetime,
    timeout: float,
) -> tuple[str, str, int | None] | None:
    """(reason, message, exit code) when the task cannot start, else None."""
    init_state: Mapping[str, Any] = init.get("state") or {}
    init_done = init_state.get("terminated")
    if init_done is not None and init_done.get("exitCode") != 0:
        detail = init_done.get("message") or init_done.get("reason") or "Error"
        return (
            "GitCheckoutFailed",
            f"the {INIT_CONTAINER} init container exited with code "
            f"{init_done.get('exitCode')}: {detail}".rstrip(),
            init_done.get("exitCode"),
        )
    containers = [
        *(status.get("initContainerStatuses") or ()),
        *(status.get("containerStatuses") or ()),
    ]
    for container in containers:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in INFRA_WAITING_REASONS:
            message = waiting.get("message") or waiting["reason"]
            return waiting["reason"], f"container {container.get('name')}: {message}", None
    for condition in status.get("conditions") or ():
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            since = _time(condition.get("lastTransitionTime"))
            if since is not None and (now - since).total_seconds() >= timeout:
                message = condition.get("message") or "no node can run the pod"
                return "Unschedulable", f"unschedulable for {timeout:g}s: {message}", None
    return None


def _container_status(statuses: Any, name: str) -> Mapping[str, Any]:
    for container in statuses or ():
        if container.get("name") == name:
            return container  # type: ignore[no-any-return]
    return {}


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value))
