"""The node agent: a stand-in for the kubelet on machines where none can run.

It registers Nodes, keeps them Ready, and drives every pod the real kube-scheduler binds
to them through the statuses a kubelet would report, by running the containers as local
processes or by script (see behaviour.py). The pod watch thread only dispatches: runtime
steps run on timers or per-pod threads, and status writes on the writer's shards, so one
slow pod never stalls the rest. The watch restarts from a fresh list on 410 Gone or any
broken stream, with capped, jittered backoff.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from controller.base.backoff import Backoff
from controller.nodeagent import behaviour as b
from controller.nodeagent.logs import LogServer, LogStore
from controller.nodeagent.nodes import NodeKeeper, NodeShape
from controller.nodeagent.podstate import FAILED, JSON, TERMINAL_PHASES, UNKNOWN, PodRecord
from controller.nodeagent.process import ProcessRuntime
from controller.nodeagent.rawapi import ApiError, RawApi
from controller.nodeagent.runtime import Runtime, RuntimeContext
from controller.nodeagent.scripted import ScriptedRuntime
from controller.nodeagent.timers import Timers
from controller.nodeagent.writer import StatusWriter

log = logging.getLogger(__name__)

# A watch is listed again without end: the agent is useless without it.
WATCH_BACKOFF = Backoff(base=0.2, cap=5.0, max_attempts=None, max_elapsed=None)
DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"


@dataclass
class AgentConfig:
    kubeconfig: Path | None
    nodes: list[str]
    data_dir: Path
    tls_cert: Path
    tls_key: Path
    name: str = "kubedag-node-agent"
    shape: NodeShape = field(default_factory=NodeShape)
    default_mode: str = b.PROCESS
    scenario: list[b.ScenarioRule] = field(default_factory=list)
    writers: int = 8


class NodeAgent:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self._api = RawApi(kubeconfig=config.kubeconfig, pool_size=config.writers + 4)
        self.logs = LogStore(config.data_dir / "logs")
        self.timers = Timers()
        self.writer = StatusWriter(
            api=self._api, host_ip=config.shape.host_ip, shards=config.writers
        )
        context = RuntimeContext(timers=self.timers, writer=self.writer, logs=self.logs)
        self._runtimes: dict[str, Runtime] = {
            b.SCRIPTED: ScriptedRuntime(context, scenario=config.scenario),
            b.PROCESS: ProcessRuntime(context, api=self._api, pods_dir=config.data_dir / "pods"),
        }
        self._context = context
        self.keeper = NodeKeeper(
            api=self._api,
            agent=config.name,
            shape=config.shape,
            on_adopt=self._on_adopt,
            on_lost=self._on_lost,
        )
        self._server = LogServer(
            store=self.logs,
            port=config.shape.kubelet_port,
            cert=config.tls_cert,
            key=config.tls_key,
            host=config.shape.host_ip,
        )
        self._records: dict[str, PodRecord] = {}
        self._records_lock = threading.Lock()
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        log.info(
            "node agent %s starting; default mode %s; container images are ignored "
            "and processes run as this agent's user (securityContext.runAsUser is "
            "ignored)",
            self.config.name,
            self.config.default_mode,
        )
        self._server.start()
        self.timers.start()
        self.writer.start()
        for name in self.config.nodes:
            self.keeper.register(name)
        for target, name in (
            (self._watch_pods, "pod-watch"),
            (self._watch_nodes, "node-watch"),
            (self.keeper.heartbeat_forever, "heartbeat"),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self.stopping.set()
        self.keeper.stopping.set()
        with self._records_lock:
            records = list(self._records.values())
        for record in records:
            self._runtime(record).kill(record, grace=2.0, then=lambda: None)
        self.writer.stop()
        self.timers.stop()
        self._server.stop()

    def lose_node(self, name: str, *, outcome: str = "failed") -> None:
        self.keeper.lose(name, outcome=outcome)

    # -- watches ---------------------------------------------------------------------

    def _watch_forever(
        self,
        *,
        path: str,
        query: dict[str, str],
        handle: Callable[[str, JSON], None],
        on_list: Callable[[list[JSON]], None] | None = None,
    ) -> None:
        failures = 0
        while not self.stopping.is_set():
            try:
                listing = self._api.request("GET", path, query=query)
                items = listing.get("items") or []
                if on_list is not None:
                    on_list(items)
                for item in items:
                    handle("ADDED", item)
                version = listing["metadata"]["resourceVersion"]
                failures = 0
                while not self.stopping.is_set():
                    for event in self._api.watch(
                        path,
                        query={**query, "resourceVersion": version, "allowWatchBookmarks": "true"},
                    ):
                        kind, obj = event["type"], event["object"]
                        if kind == "ERROR":
                            raise ApiError(int(obj.get("code", 500)), obj.get("message", ""))
                        version = obj["metadata"]["resourceVersion"]
                        if kind != "BOOKMARK":
                            handle(kind, obj)
                        if self.stopping.is_set():
                            break
            except ApiError as error:
                if not self.stopping.is_set():
                    log.warning("watch of %s ended (%s); listing again", path, error)
                    failures += 1
                    self.stopping.wait(WATCH_BACKOFF.delay(failures))
            except Exception:
                log.exception("watch of %s failed; listing again", path)
                failures += 1
                self.stopping.wait(WATCH_BACKOFF.delay(failures))

    def _watch_pods(self) -> None:
        self._watch_forever(
            path="/api/v1/pods", query={"fieldSelector": "spec.nodeName!="}, handle=self._on_pod
        )

    def _watch_nodes(self) -> None:
        selector = f"{b.NODE_AGENT_LABEL}={self.config.name}"
        self._watch_forever(
            path="/api/v1/nodes",
            query={"labelSelector": selector},
            handle=lambda kind, node: self.keeper.observe(node, deleted=kind == "DELETED"),
        )

    def _on_adopt(self, name: str) -> None:
        # The pod watch skipped pods bound to the node before it was adopted.
        listing = self._api.request(
            "GET", "/api/v1/pods", query={"fieldSelector": f"spec.nodeName={name}"}
        )
        for pod in listing.get("items") or []:
            self._start_if_new(pod)

    # -- pods ------------------------------------------------------------------------

    def _runtime(self, record: PodRecord) -> Runtime:
        return self._runtimes[record.mode]

    def _on_pod(self, kind: str, pod: JSON) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        with self._records_lock:
            record = self._records.get(uid)
        if kind == "DELETED":
            if record is not None:
                self._forget(record)
            return
        if record is not None:
            if meta.get("deletionTimestamp") and not record.deleting:
                self._delete(record, grace=float(meta.get("deletionGracePeriodSeconds") or 0))
            return
        self._start_if_new(pod)

    def _start_if_new(self, pod: JSON) -> None:
        """Start a pod on one of this agent's nodes that it does not run yet.

        Called from the pod watch and, for a node just adopted, from the node watch."""
        meta, spec = pod["metadata"], pod["spec"]
        if not self.keeper.is_managed(spec.get("nodeName", "")):
            return
        phase = pod.get("status", {}).get("phase")
        if phase in TERMINAL_PHASES or phase == UNKNOWN:
            if meta.get("deletionTimestamp"):
                self._api.delete_pod(
                    namespace=meta["namespace"], name=meta["name"], uid=meta["uid"]
                )
            return
        self._accept(pod)

    def _accept(self, pod: JSON) -> None:
        meta = pod["metadata"]
        mode = b.pod_mode(pod, default=self.config.default_mode, scenario=self.config.scenario)
        record = PodRecord.from_pod(pod, mode=mode)
        with self._records_lock:
            # Both watches may offer the same pod; the first one to get here runs it.
            if record.uid in self._records:
                return
            self._records[record.uid] = record
        if meta.get("deletionTimestamp"):
            self._delete(record, grace=0.0)
            return
        if pod.get("status", {}).get("startTime"):
            with record.lock:
                record.fail(
                    reason="NodeAgentRestarted",
                    message="the node agent restarted and lost this pod's containers",
                )
                record.stopped = True
                self._context.changed(record)
            return
        self._runtime(record).start(record, pod)
        deadline = pod["spec"].get("activeDeadlineSeconds")
        if deadline:
            self.timers.call_later(float(deadline), lambda: self._deadline(record))

    def _deadline(self, record: PodRecord) -> None:
        with record.lock:
            if record.terminal or record.deleting:
                return

        def failed() -> None:
            with record.lock:
                if record.terminal:
                    return
                record.fail(reason="DeadlineExceeded", message=DEADLINE_MESSAGE)
                record.stopped = True
                self._context.changed(record)

        self._runtime(record).kill(record, grace=0.0, then=failed)

    def _delete(self, record: PodRecord, *, grace: float) -> None:
        with record.lock:
            record.deleting = True
            if record.terminal or record.stopped:
                record.stopped = True
                self._context.changed(record)
                return

        def stopped() -> None:
            with record.lock:
                if not record.terminal:
                    record.finish_from_containers()
                    if any(not c.is_terminated for c in record.main):
                        record.phase = FAILED
                record.stopped = True
                self._context.changed(record)

        self._runtime(record).kill(record, grace=grace, then=stopped)

    def _forget(self, record: PodRecord) -> None:
        with self._records_lock:
            self._records.pop(record.uid, None)
        with record.lock:
            live = not record.stopped
            record.deleting = record.stopped = True
        if live:
            self._runtime(record).abandon(record)
        self.logs.remove_pod(record.namespace, record.name)

    def _on_lost(self, node: str, outcome: str) -> None:
        with self._records_lock:
            records = [r for r in self._records.values() if r.node == node]
        for record in records:
            with record.lock:
                was_terminal = record.terminal
                record.lost = True
            self._runtime(record).abandon(record)
            if outcome == "vanish":
                self._api.delete_pod(namespace=record.namespace, name=record.name, uid=record.uid)
                continue
            if was_terminal:
                continue
            with record.lock:
                record.phase = FAILED if outcome == "failed" else UNKNOWN
                record.reason = "NodeLost"
                record.message = f"Node {node} which was running pod {record.name} is unresponsive"
                for container in record.main:
                    container.ready = False
                self._context.changed(record)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(
            r.sent_version < r.version for r in records if outcome != "vanish"
        ):
            time.sleep(0.05)
