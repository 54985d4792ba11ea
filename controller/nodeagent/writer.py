"""Sends pod statuses (and final deletions) to the apiserver from a pool of shards.

Status writes are the agent's hot path. Each pod hashes to one shard, a single thread
with its own queue, so a pod's writes stay in order while different pods' writes run
in parallel; a pod already queued is not queued twice, and the write sends its newest
snapshot, so bursts of transitions coalesce. Failed writes retry with capped, jittered
backoff (an apiserver restart must not lose a pod's final status), for ten minutes at
most; a write the apiserver refuses (4xx other than 429) is not retried,
since it would hold up every pod of its shard for that long.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import zlib

from controller.base.backoff import Backoff
from controller.nodeagent.podstate import PodRecord, status_of
from controller.nodeagent.rawapi import ApiError, RawApi

log = logging.getLogger(__name__)
WRITE_BACKOFF = Backoff(base=0.3, cap=7.5, max_attempts=None, max_elapsed=600.0)


class _Shard:
    def __init__(self, writer: StatusWriter, index: int) -> None:
        self.queue: queue.Queue[PodRecord | None] = queue.Queue()
        self.pending: set[str] = set()
        self.lock = threading.Lock()
        self.writer = writer
        self.thread = threading.Thread(target=self._run, name=f"status-writer-{index}", daemon=True)

    def put(self, record: PodRecord) -> None:
        with self.lock:
            if record.uid in self.pending:
                return
            self.pending.add(record.uid)
        self.queue.put(record)

    def _run(self) -> None:
        while True:
            record = self.queue.get()
            if record is None:
                return
            with self.lock:
                self.pending.discard(record.uid)
            self.writer.sync_with_retries(record)


class StatusWriter:
    def __init__(self, *, api: RawApi, host_ip: str, shards: int = 8) -> None:
        self._api = api
        self._host_ip = host_ip
        self._shards = [_Shard(self, i) for i in range(shards)]
        self.stopping = threading.Event()
        self.writes = 0

    def start(self) -> None:
        for shard in self._shards:
            shard.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        for shard in self._shards:
            shard.queue.put(None)
        for shard in self._shards:
            shard.thread.join(timeout=5)

    def mark(self, record: PodRecord) -> None:
        """Record changed: schedule a write of its newest state."""
        self._shards[zlib.crc32(record.uid.encode()) % len(self._shards)].put(record)

    def sync_with_retries(self, record: PodRecord) -> None:
        started = time.monotonic()
        failures = 0
        while not self.stopping.is_set():
            try:
                self._sync(record)
                return
            except ApiError as error:
                if error.status == 404:
                    return  # the pod is gone; nothing left to report
                if 400 <= error.status < 500 and error.status != 429:
                    # Refused for good (a status the apiserver will never accept, e.g. a
                    # container moved back from terminated): retrying would only hold up
                    # every other pod of this shard.
                    log.error("status of pod %s refused: %s", record.key, error)
                    return
                failures += 1
                pause = WRITE_BACKOFF.next_delay(
                    attempt=failures, elapsed=time.monotonic() - started
                )
                if pause is None:
                    log.error("giving up on the status of pod %s: %s", record.key, error)
                    return
                log.warning("status of pod %s not written (%s); retrying", record.key, error)
                self.stopping.wait(pause)

    def _sync(self, record: PodRecord) -> None:
        with record.lock:
            version = record.version
            snapshot = (
                None if version == record.sent_version else status_of(record, host_ip=self._host_ip)
            )
        if snapshot is not None:
            self._api.patch_status(namespace=record.namespace, name=record.name, status=snapshot)
            self.writes += 1
            with record.lock:
                record.sent_version = max(record.sent_version, version)
        with record.lock:
            delete = record.deleting and record.stopped and not record.delete_sent
        if delete:
            # As a kubelet does once a deleted pod's containers are stopped: remove it
            # with grace 0. The apiserver keeps it while finalizers remain.
            self._api.delete_pod(namespace=record.namespace, name=record.name, uid=record.uid)
            with record.lock:
                record.delete_sent = True
