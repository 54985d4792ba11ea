"""What the agent needs from a way of running pods, and the shared context both use."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from controller.nodeagent.logs import LogStore
from controller.nodeagent.podstate import JSON, PodRecord
from controller.nodeagent.timers import Timers
from controller.nodeagent.writer import StatusWriter

# The exit code of a container the agent stopped, that honoured SIGTERM.
EXIT_SIGTERM = 143


@dataclass
class RuntimeContext:
    timers: Timers
    writer: StatusWriter
    logs: LogStore

    def changed(self, record: PodRecord) -> None:
        """Call with record.lock held after changing it."""
        record.touch()
        self.writer.mark(record)


class Runtime(Protocol):
    def start(self, record: PodRecord, pod: JSON) -> None:
        """Begin running the pod; return at once (work happens on other threads)."""

    def kill(self, record: PodRecord, *, grace: float, then: Callable[[], None]) -> None:
        """Stop every container (SIGTERM, SIGKILL after `grace`); call `then` once stopped."""

    def abandon(self, record: PodRecord) -> None:
        """Stop everything at once and report nothing more (the pod or its node is gone)."""
