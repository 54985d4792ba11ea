"""The agent's in-memory view of one pod it runs, and the status it reports for it.

Runtimes (scripted or process) change a PodRecord under its lock; the status writer
later sends `status_of(record)` as one complete snapshot. Sending whole snapshots (not
deltas) means a patch lost to an apiserver outage is repaired by the next one, and
fast transitions coalesce into fewer writes, as a real kubelet's status manager does.
"""

from __future__ import annotations

import datetime
import threading
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]

PENDING, RUNNING, SUCCEEDED, FAILED, UNKNOWN = (
    "Pending",
    "Running",
    "Succeeded",
    "Failed",
    "Unknown",
)
TERMINAL_PHASES = (SUCCEEDED, FAILED)


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def waiting(reason: str, message: str | None = None) -> JSON:
    state: JSON = {"reason": reason}
    if message:
        state["message"] = message
    return {"waiting": state}


def running(started_at: str) -> JSON:
    return {"running": {"startedAt": started_at}}


def terminated(
    *, exit_code: int, started_at: str | None, reason: str | None = None, message: str = ""
) -> JSON:
    state: JSON = {
        "exitCode": exit_code,
        "reason": reason or ("Completed" if exit_code == 0 else "Error"),
        "startedAt": started_at,
        "finishedAt": now(),
    }
    if message:
        state["message"] = message
    return {"terminated": state}


@dataclass
class ContainerRecord:
    name: str
    image: str
    state: JSON
    ready: bool = False

    @property
    def is_terminated(self) -> bool:
        return "terminated" in self.state

    @property
    def exit_code(self) -> int | None:
        return self.state["terminated"]["exitCode"] if self.is_terminated else None

    @property
    def started_at(self) -> str | None:
        inner = self.state.get("running") or self.state.get("terminated") or {}
        return inner.get("startedAt")

    def to_status(self, *, container_id: str) -> JSON:
        status: JSON = {
            "name": self.name,
            "image": self.image,
            "imageID": "",
            "ready": self.ready,
            "restartCount": 0,
            "started": "running" in self.state,
            "state": self.state,
        }
        if "waiting" not in self.state:
            status["containerID"] = container_id
        return status


@dataclass
class PodRecord:
    """What the agent knows and decided about one pod incarnation (by uid)."""

    uid: str
    namespace: str
    name: str
    node: str
    mode: str
    init: list[ContainerRecord]
    main: list[ContainerRecord]
    spec: JSON
    phase: str = PENDING
    reason: str | None = None
    message: str | None = None
    start_time: str = field(default_factory=now)
    deleting: bool = False  # deletionTimestamp seen: stop, then delete with grace 0
    delete_sent: bool = False
    stopped: bool = False  # no container runs any more (the runtime is done with it)
    lost: bool = False  # its node was lost: nothing changes it any more
    version: int = 0  # bumped on every change; the writer sends versions it has not sent
    sent_version: int = -1
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _transitions: dict[str, tuple[str, str]] = field(default_factory=dict, repr=False)

    @classmethod
    def from_pod(cls, pod: JSON, *, mode: str) -> PodRecord:
        meta, spec = pod["metadata"], pod["spec"]

        def containers(key: str, reason: str) -> list[ContainerRecord]:
            return [
                ContainerRecord(name=c["name"], image=c.get("image", ""), state=waiting(reason))
                for c in spec.get(key) or []
            ]

        has_init = bool(spec.get("initContainers"))
        return cls(
            uid=meta["uid"],
            namespace=meta["namespace"],
            name=meta["name"],
            node=spec["nodeName"],
            mode=mode,
            init=containers("initContainers", "PodInitializing"),
            main=containers("containers", "PodInitializing" if has_init else "ContainerCreating"),
            spec=spec,
        )

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def terminal(self) -> bool:
        return self.phase in TERMINAL_PHASES or self.lost

    def container(self, name: str) -> ContainerRecord:
        for record in (*self.init, *self.main):
            if record.name == name:
                return record
        raise KeyError(name)

    def touch(self) -> None:
        self.version += 1

    def finish_from_containers(self) -> None:
        """Succeeded if every main container exited 0, else Failed (restartPolicy Never)."""
        codes = [c.exit_code for c in self.main]
        self.phase = SUCCEEDED if all(code == 0 for code in codes) else FAILED
        for c in self.main:
            c.ready = False

    def fail(self, *, reason: str, message: str) -> None:
        self.phase, self.reason, self.message = FAILED, reason, message
        for c in self.main:
            c.ready = False


def _condition(record: PodRecord, kind: str, ok: bool, reason: str | None = None) -> JSON:
    status = "True" if ok else "False"
    previous = record._transitions.get(kind)
    if previous is None or previous[0] != status:
        record._transitions[kind] = (status, now())
    condition: JSON = {
        "type": kind,
        "status": status,
        "lastProbeTime": None,
        "lastTransitionTime": record._transitions[kind][1],
    }
    if reason and not ok:
        condition["reason"] = reason
    return condition


def status_of(record: PodRecord, *, host_ip: str) -> JSON:
    """The complete pod status to send; call with record.lock held."""
    initialized = all(c.exit_code == 0 for c in record.init)
    ready = not record.terminal and bool(record.main) and all(c.ready for c in record.main)
    conditions = [
        _condition(record, "Initialized", initialized, "ContainersNotInitialized"),
        _condition(
            record, "Ready", ready, "PodCompleted" if record.terminal else "ContainersNotReady"
        ),
        _condition(
            record,
            "ContainersReady",
            ready,
            "PodCompleted" if record.terminal else "ContainersNotReady",
        ),
        _condition(record, "PodScheduled", True),
    ]
    prefix = f"kubedag://{record.uid}/"
    status: JSON = {
        "phase": record.phase,
        "conditions": conditions,
        "hostIP": host_ip,
        "podIP": host_ip,
        "podIPs": [{"ip": host_ip}],
        "startTime": record.start_time,
        "initContainerStatuses": [c.to_status(container_id=prefix + c.name) for c in record.init],
        "containerStatuses": [c.to_status(container_id=prefix + c.name) for c in record.main],
        "reason": record.reason,
        "message": record.message,
    }
    return status
