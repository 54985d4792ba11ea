"""Scripted pods: statuses follow declared durations, exit codes and failures.

No process runs; every step is a timer callback that changes the PodRecord and hands
it to the writer. Each callback first checks that the pod is still live (not deleted,
past its deadline or lost), so callbacks never need cancelling.
"""

from __future__ import annotations

from collections.abc import Callable

from controller.nodeagent import behaviour as b
from controller.nodeagent.podstate import (
    FAILED,
    JSON,
    PENDING,
    RUNNING,
    ContainerRecord,
    PodRecord,
    now,
    running,
    terminated,
    waiting,
)
from controller.nodeagent.runtime import EXIT_SIGTERM, RuntimeContext

BACKOFF_AFTER = 1.0  # seconds from ErrImagePull to ImagePullBackOff, like a kubelet's first retry
WAITING_MESSAGES = {
    b.ERR_IMAGE_PULL: "scripted failure: the image could not be pulled",
    b.IMAGE_PULL_BACKOFF: "Back-off pulling image (scripted failure)",
    b.CREATE_CONTAINER_CONFIG_ERROR: "scripted failure: the container's configuration is invalid",
}


class ScriptedRuntime:
    def __init__(self, context: RuntimeContext, *, scenario: list[b.ScenarioRule]) -> None:
        self._ctx = context
        self._scenario = scenario

    def start(self, record: PodRecord, pod: JSON) -> None:
        self._ctx.logs.reset_pod(record.namespace, record.name)
        try:
            script = b.pod_script(pod, scenario=self._scenario)
        except b.BehaviourError as error:
            with record.lock:
                for container in record.main:
                    container.state = terminated(exit_code=1, started_at=None, message=str(error))
                record.fail(reason="InvalidScript", message=str(error))
                record.stopped = True
                self._ctx.changed(record)
            return
        with record.lock:
            self._ctx.changed(record)
        self._init_step(record, script, 0)

    def kill(self, record: PodRecord, *, grace: float, then: Callable[[], None]) -> None:
        with record.lock:
            for container in (*record.init, *record.main):
                if "running" in container.state:
                    container.state = terminated(
                        exit_code=EXIT_SIGTERM, started_at=container.started_at
                    )
                    container.ready = False
            record.stopped = True
            self._ctx.changed(record)
        then()

    def abandon(self, record: PodRecord) -> None:
        """Nothing runs; the pending steps see the pod is lost or gone and do nothing."""

    def _live(self, record: PodRecord) -> bool:
        return not (record.terminal or record.deleting or record.stopped)

    def _later(self, delay: float, step: Callable[[], None]) -> None:
        if delay <= 0:
            step()
        else:
            self._ctx.timers.call_later(delay, step)

    def _waiting_failure(self, record: PodRecord, container: ContainerRecord, failure: str) -> None:
        first = b.ERR_IMAGE_PULL if failure == b.IMAGE_PULL_BACKOFF else failure
        container.state = waiting(first, WAITING_MESSAGES[first])
        self._ctx.changed(record)
        if failure == b.IMAGE_PULL_BACKOFF:

            def backoff() -> None:
                with record.lock:
                    if self._live(record) and "waiting" in container.state:
                        container.state = waiting(failure, WAITING_MESSAGES[failure])
                        self._ctx.changed(record)

            self._ctx.timers.call_later(BACKOFF_AFTER, backoff)

    def _init_step(self, record: PodRecord, script: b.PodScript, index: int) -> None:
        with record.lock:
            if not self._live(record):
                return
            if index == len(record.init):
                self._start_main(record, script)
                return
            container = record.init[index]
            self._ctx.logs.append(
                namespace=record.namespace,
                pod=record.name,
                container=container.name,
                stream="stdout",
                text=f"scripted init container {container.name}",
            )
            if script.init.failure:
                self._waiting_failure(record, container, script.init.failure)
                return
            container.state = running(now())
            self._ctx.changed(record)

        def finish() -> None:
            with record.lock:
                if not self._live(record):
                    return
                code = script.init.exit_code
                container.state = terminated(exit_code=code, started_at=container.started_at)
                self._ctx.logs.mark_done(record.namespace, record.name, container.name)
                if code != 0:
                    record.phase = FAILED
                    record.stopped = True
                    self._ctx.changed(record)
                    return
                self._ctx.changed(record)
            self._init_step(record, script, index + 1)

        self._later(script.init.duration, finish)

    def _start_main(self, record: PodRecord, script: b.PodScript) -> None:
        main = script.main
        started = now()
        for container in record.main:
            self._ctx.logs.append(
                namespace=record.namespace,
                pod=record.name,
                container=container.name,
                stream="stdout",
                text=main.log or f"scripted container {container.name} started",
            )
            if main.failure in WAITING_MESSAGES:
                self._waiting_failure(record, container, main.failure)
            else:
                container.state = running(started)
                container.ready = True
        record.phase = RUNNING if any("running" in c.state for c in record.main) else PENDING
        self._ctx.changed(record)
        if main.failure in WAITING_MESSAGES:
            return

        def finish() -> None:
            with record.lock:
                if not self._live(record):
                    return
                if main.failure == b.NODE_LOST_FAILURE:
                    record.fail(
                        reason="NodeLost",
                        message=f"Node {record.node} which was running pod "
                        f"{record.name} is unresponsive",
                    )
                    record.stopped = True
                    self._ctx.changed(record)
                    return
                for container in record.main:
                    if main.failure == b.OOM_KILLED:
                        container.state = terminated(
                            exit_code=137, reason=b.OOM_KILLED, started_at=container.started_at
                        )
                    else:
                        container.state = terminated(
                            exit_code=main.exit_code,
                            started_at=container.started_at,
                            message=main.termination_message,
                        )
                    self._ctx.logs.mark_done(record.namespace, record.name, container.name)
                record.finish_from_containers()
                record.stopped = True
                self._ctx.changed(record)

        self._later(main.duration, finish)
