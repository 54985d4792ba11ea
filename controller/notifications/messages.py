"""The JSON body a notification carries, built from an event: pure, and documented.

One body for every receiver: its `text` is what a Slack-compatible incoming webhook
shows (they ignore fields they do not know), and the other fields are for generic
receivers that route or store notifications. The body is versioned so a receiver can
tell a later change of shape.
"""

from __future__ import annotations

from typing import Any

from controller.store import DagRunRecord, EventRecord

VERSION = 1
EVENT_NAMES = {
    "run-failed": "runFailed",
    "run-succeeded": "runSucceeded",
    "run-cancelled": "runCancelled",
    "task-retries-exhausted": "taskRetriesExhausted",
    "run-sla-missed": "slaMissed",
}
_HEADLINES = {
    "runFailed": "failed",
    "runSucceeded": "succeeded",
    "runCancelled": "was cancelled",
    "taskRetriesExhausted": "has a task that failed with no retry left",
    "slaMissed": "missed its SLA",
}


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def notification(event: EventRecord, run: DagRunRecord | None) -> dict[str, Any]:
    """The body for `event` (one of EVENT_NAMES' kinds) of `run`."""
    name = EVENT_NAMES[event.kind]
    body: dict[str, Any] = {
        "version": VERSION,
        "event": name,
        "dag": event.dag_name,
        "at": _iso(event.at),
        "message": event.message,
        "run": None,
        "task": None,
    }
    if run is not None:
        body["run"] = {
            "id": run.id,
            "logicalDate": _iso(run.logical_date),
            "type": run.run_type.value,
            "state": run.state.value,
            "revision": run.revision,
            "startedAt": _iso(run.started_at),
            "finishedAt": _iso(run.finished_at),
        }
    if event.task_name is not None:
        body["task"] = {"name": event.task_name, "itemIndex": event.item_index}
    when = "" if run is None else f" ({run.logical_date.strftime('%Y-%m-%d %H:%M UTC')})"
    subject = f"kubedag: run {event.run_id} of {event.dag_name}{when} {_HEADLINES[name]}"
    body["text"] = f"{subject}: {event.message}"
    return body
