"""Process mode: a pod's init and main containers run as local processes.

Each pod gets one thread that runs its init containers in order, then its main
containers side by side, and reports each container's real exit code, log and
termination message. The image is ignored and processes run as the agent's user. A
container whose configuration cannot be resolved yet waits with reason
CreateContainerConfigError and is retried, as a kubelet does.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from controller.nodeagent import mounts as m
from controller.nodeagent.podenv import ConfigError, container_env, expand, volume_files
from controller.nodeagent.podstate import (
    FAILED,
    JSON,
    RUNNING,
    ContainerRecord,
    PodRecord,
    now,
    running,
    terminated,
    waiting,
)
from controller.nodeagent.rawapi import RawApi
from controller.nodeagent.runtime import RuntimeContext

log = logging.getLogger(__name__)
MESSAGE_LIMIT = 4096  # the kubelet keeps the last 4096 bytes of a termination message
FALLBACK_LOG_LINES = 80
CONFIG_RETRY_SECONDS = 2.0


@dataclass
class _PodRun:
    """Processes of one pod, and how to stop them."""

    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    grace: float = 0.0
    then: list[Callable[[], None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class ProcessRuntime:
    def __init__(self, context: RuntimeContext, *, api: RawApi, pods_dir: Path) -> None:
        self._ctx = context
        self._api = api
        self._pods_dir = pods_dir
        self._mount_points = m.MountPoints()
        self._runs: dict[str, _PodRun] = {}
        self._guard = threading.Lock()
        if not m.isolated():
            log.warning(
                "not running as root: no mount namespaces, so volume paths are "
                "rewritten to per-pod directories and only KUBEDAG_RESULT_PATH "
                "reaches the termination message file"
            )

    def start(self, record: PodRecord, pod: JSON) -> None:
        run = _PodRun()
        with self._guard:
            self._runs[record.uid] = run
        self._ctx.logs.reset_pod(record.namespace, record.name)
        thread = threading.Thread(
            target=self._run_pod, args=(record, pod, run), name=f"pod-{record.key}", daemon=True
        )
        thread.start()

    def kill(self, record: PodRecord, *, grace: float, then: Callable[[], None]) -> None:
        with self._guard:
            run = self._runs.get(record.uid)
        if run is None:
            then()
            return
        with run.lock:
            run.grace = grace
            run.then.append(then)
            run.stop.set()
            procs = list(run.procs)
        for proc in procs:
            _signal(proc, signal.SIGTERM)

    def abandon(self, record: PodRecord) -> None:
        with self._guard:
            run = self._runs.get(record.uid)
        if run is None:
            return
        with run.lock:
            run.stop.set()
            procs = list(run.procs)
        for proc in procs:
            _signal(proc, signal.SIGKILL)

    # -- the pod thread --------------------------------------------------------------

    def _run_pod(self, record: PodRecord, pod: JSON, run: _PodRun) -> None:
        pod_dir = self._pods_dir / record.uid
        used: list[m.Mount] = []
        try:
            volumes = self._prepare_volumes(pod, pod_dir, run)
            if volumes is None:
                return
            spec = pod["spec"]
            for container in spec.get("initContainers") or []:
                code = self._run_containers(record, pod, [container], volumes, run, used)
                if code is None or run.stop.is_set():
                    return
                if code != 0:
                    with record.lock:
                        record.phase = FAILED
                        self._ctx.changed(record)
                    return
            self._run_containers(record, pod, spec["containers"], volumes, run, used)
            with record.lock:
                if not record.terminal and not run.stop.is_set():
                    record.finish_from_containers()
                    self._ctx.changed(record)
        except Exception as error:
            log.exception("pod %s failed in the node agent", record.key)
            with record.lock:
                record.fail(reason="NodeAgentError", message=str(error))
                self._ctx.changed(record)
        finally:
            for mount in used:
                self._mount_points.release(mount)
            self._finish(record, run)
            shutil.rmtree(pod_dir, ignore_errors=True)

    def _finish(self, record: PodRecord, run: _PodRun) -> None:
        with run.lock:
            callbacks = list(run.then)
            run.then.clear()
        with self._guard:
            self._runs.pop(record.uid, None)
        with record.lock:
            record.stopped = True
            if not record.lost:
                self._ctx.changed(record)
        for callback in callbacks:
            callback()
        # A kill that raced the end of the pod still gets its callback.
        with run.lock:
            late = list(run.then)
        for callback in late:
            callback()

    def _prepare_volumes(self, pod: JSON, pod_dir: Path, run: _PodRun) -> dict[str, Path] | None:
        volumes: dict[str, Path] = {}
        for volume in pod["spec"].get("volumes") or []:
            path = pod_dir / "volumes" / volume["name"]
            path.mkdir(parents=True, exist_ok=True)
            if "hostPath" in volume:
                volumes[volume["name"]] = Path(volume["hostPath"]["path"])
                continue
            if "emptyDir" not in volume:
                files = self._retry_config(pod, volume, run=run)
                if files is None and run.stop.is_set():
                    return None
                for key, content in (files or {}).items():
                    (path / key).parent.mkdir(parents=True, exist_ok=True)
                    (path / key).write_text(content)
            volumes[volume["name"]] = path
        return volumes

    def _retry_config(self, pod: JSON, volume: JSON, *, run: _PodRun) -> dict[str, str] | None:
        while not run.stop.is_set():
            try:
                return volume_files(self._api, pod=pod, volume=volume)
            except ConfigError as error:
                log.warning("volume not ready: %s; retrying", error)
                run.stop.wait(CONFIG_RETRY_SECONDS)
        return None

    def _run_containers(
        self,
        record: PodRecord,
        pod: JSON,
        containers: list[JSON],
        volumes: dict[str, Path],
        run: _PodRun,
        used: list[m.Mount],
    ) -> int | None:
        """Start the containers together and wait for all; the worst exit code, or None."""
        started: list[tuple[JSON, subprocess.Popen[bytes], Path, str]] = []
        for container in containers:
            launched = self._launch(record, pod, container, volumes, run, used)
            if launched is None:
                return None
            started.append((container, *launched))
        with record.lock:
            if any(c.name == containers[0]["name"] for c in record.main):
                record.phase = RUNNING
            self._ctx.changed(record)
        codes = []
        for container, proc, result_file, started_at in started:
            code = self._wait(proc, run)
            codes.append(code)
            self._report_exit(
                record, container, code=code, result_file=result_file, started_at=started_at
            )
        return max(codes, key=abs) if codes else 0

    def _launch(
        self,
        record: PodRecord,
        pod: JSON,
        container: JSON,
        volumes: dict[str, Path],
        run: _PodRun,
        used: list[m.Mount],
    ) -> tuple[subprocess.Popen[bytes], Path, str] | None:
        state = record.container(container["name"])
        env = self._resolve_env(record, pod, container, state, run)
        if env is None:
            return None
        argv = [
            expand(a, env) for a in (container.get("command") or []) + (container.get("args") or [])
        ]
        if not container.get("command"):
            raise ValueError(
                f"container {container['name']}: the node agent ignores images, so "
                "it cannot know the image's entrypoint; set command"
            )
        result_file = self._pods_dir / record.uid / "termination" / container["name"]
        result_file.parent.mkdir(parents=True, exist_ok=True)
        result_file.write_bytes(b"")
        mounts = [
            m.Mount(
                source=volumes[v["name"]] / v.get("subPath", ""),
                target=v["mountPath"],
                read_only=bool(v.get("readOnly")),
            )
            for v in container.get("volumeMounts") or []
            if v["name"] in volumes
        ]
        mounts.append(
            m.Mount(
                source=result_file,
                target=container.get("terminationMessagePath") or m.DEFAULT_TERMINATION_PATH,
            )
        )
        workdir = container.get("workingDir") or str(self._pods_dir / record.uid)
        base = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/"),
            "LANG": "C.UTF-8",
            "HOSTNAME": record.name,
        }
        full_env = {**base, **env, "KUBEDAG_RESULT_PATH": str(result_file)}
        if m.isolated():
            for mount in mounts:
                self._mount_points.acquire(mount)
                used.append(mount)
            command, cwd = m.wrap(argv, mounts=mounts, workdir=workdir), None
        else:
            command, cwd = argv, m.rewrite(workdir, mounts)
        log.info(
            "pod %s container %s: image %s ignored; running %s",
            record.key,
            container["name"],
            container.get("image", ""),
            argv,
        )
        self._ctx.logs.create(record.namespace, record.name, container["name"])
        with run.lock:
            if run.stop.is_set():
                return None
            proc = subprocess.Popen(
                command,
                env=full_env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
            run.procs.append(proc)
        for stream, pipe in (("stdout", proc.stdout), ("stderr", proc.stderr)):
            threading.Thread(
                target=self._pump, args=(record, container["name"], stream, pipe), daemon=True
            ).start()
        started_at = now()
        with record.lock:
            state.state = running(started_at)
            state.ready = True
            self._ctx.changed(record)
        return proc, result_file, started_at

    def _resolve_env(
        self, record: PodRecord, pod: JSON, container: JSON, state: ContainerRecord, run: _PodRun
    ) -> dict[str, str] | None:
        while not run.stop.is_set():
            try:
                return container_env(self._api, pod=pod, container=container)
            except ConfigError as error:
                with record.lock:
                    if state.state.get("waiting", {}).get("message") != str(error):
                        state.state = waiting("CreateContainerConfigError", str(error))
                        self._ctx.changed(record)
                run.stop.wait(CONFIG_RETRY_SECONDS)
        return None

    def _pump(self, record: PodRecord, container: str, stream: str, pipe: IO[bytes] | None) -> None:
        if pipe is None:
            return
        with pipe:
            for line in pipe:
                self._ctx.logs.append(
                    namespace=record.namespace,
                    pod=record.name,
                    container=container,
                    stream=stream,
                    text=line.decode(errors="replace").rstrip("\n"),
                )

    def _wait(self, proc: subprocess.Popen[bytes], run: _PodRun) -> int:
        while True:
            try:
                code = proc.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if run.stop.is_set():
                    deadline = time.monotonic() + run.grace
                    while proc.poll() is None and time.monotonic() < deadline:
                        time.sleep(0.05)
                    _signal(proc, signal.SIGKILL)
        return 128 - code if code < 0 else code

    def _report_exit(
        self, record: PodRecord, container: JSON, *, code: int, result_file: Path, started_at: str
    ) -> None:
        time.sleep(0.05)  # let the log pumps drain the pipes' last lines
        message = result_file.read_bytes()[-MESSAGE_LIMIT:].decode(errors="replace")
        if (
            not message
            and code != 0
            and container.get("terminationMessagePolicy") == "FallbackToLogsOnError"
        ):
            tail = self._ctx.logs.tail(
                record.namespace, record.name, container["name"], lines=FALLBACK_LOG_LINES
            )
            message = tail[-2048:]
        self._ctx.logs.mark_done(record.namespace, record.name, container["name"])
        with record.lock:
            if record.lost:
                return
            state = record.container(container["name"])
            state.state = terminated(exit_code=code, started_at=started_at, message=message)
            state.ready = False
            self._ctx.changed(record)


def _signal(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
