"""Notification settings: receivers, and which DAG tells which receivers about what.

A receiver's URL is read from a file (a mounted Secret), never from git or the config
file itself, since an incoming-webhook URL is a credential. Routes are per DAG, with a
default for every DAG that has none of its own.

```yaml
notifications:
  receivers:
    - {name: ops, urlFile: /etc/kubedag/notify/ops}
  default: {receivers: [ops], events: [runFailed, taskRetriesExhausted, slaMissed], sla: 2h}
  dags:
    daily-sales: {receivers: [ops], events: [runFailed, runSucceeded]}
```

(The list is `events`, not `on`: YAML 1.1 reads a bare `on` key as the boolean true.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from controller.base.durations import DurationError, parse_duration

EVENTS = ("runFailed", "runSucceeded", "runCancelled", "taskRetriesExhausted", "slaMissed")
DEFAULT_EVENTS = ("runFailed", "taskRetriesExhausted", "slaMissed")

_ROUTE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["receivers"],
    "properties": {
        "receivers": {"type": "array", "items": {"type": "string"}},
        "events": {"type": "array", "items": {"enum": list(EVENTS)}},
        "sla": {"type": ["string", "number", "null"]},
    },
}
SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "receivers": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "urlFile"],
                "properties": {"name": {"type": "string"}, "urlFile": {"type": "string"}},
            },
        },
        "default": _ROUTE_SCHEMA,
        "dags": {"type": "object", "additionalProperties": _ROUTE_SCHEMA},
        "timeout": {"type": ["string", "number"]},
    },
}


class NotificationSettingsError(ValueError):
    """A notification setting is wrong; the message names it."""


@dataclass(frozen=True)
class Route:
    receivers: tuple[str, ...]
    events: tuple[str, ...] = DEFAULT_EVENTS
    sla_seconds: float | None = None
    """A run not finished this long after it was queued is an SLA miss."""


@dataclass(frozen=True)
class NotificationSettings:
    receivers: Mapping[str, str] = field(default_factory=dict)
    """Receiver name -> the file holding its webhook URL."""
    default: Route | None = None
    dags: Mapping[str, Route] = field(default_factory=dict)
    timeout_seconds: float = 10.0

    def route(self, dag_name: str) -> Route | None:
        return self.dags.get(dag_name, self.default)

    @property
    def enabled(self) -> bool:
        return bool(self.receivers) and (self.default is not None or bool(self.dags))


def _seconds(value: object, where: str) -> float:
    try:
        return parse_duration(value)
    except DurationError as error:
        raise NotificationSettingsError(f"{where}: {error}") from None


def _route(doc: Mapping[str, Any], where: str, known: Mapping[str, str]) -> Route:
    receivers = tuple(doc.get("receivers", ()))
    for name in receivers:
        if name not in known:
            listed = ", ".join(sorted(known)) or "none"
            raise NotificationSettingsError(
                f"{where}.receivers: no receiver named {name!r} (receivers: {listed})"
            )
    sla = doc.get("sla")
    return Route(
        receivers=receivers,
        events=tuple(doc.get("events", DEFAULT_EVENTS)),
        sla_seconds=None if sla is None else _seconds(sla, f"{where}.sla"),
    )


def parse_settings(doc: Mapping[str, Any]) -> NotificationSettings:
    """Settings from the `notifications` section (already checked against SCHEMA)."""
    receivers: dict[str, str] = {}
    for entry in doc.get("receivers", ()):
        if entry["name"] in receivers:
            raise NotificationSettingsError(
                f"notifications.receivers: {entry['name']!r} is named twice"
            )
        receivers[entry["name"]] = entry["urlFile"]
    default = doc.get("default")
    return NotificationSettings(
        receivers=receivers,
        default=None if default is None else _route(default, "notifications.default", receivers),
        dags={
            name: _route(route, f"notifications.dags.{name}", receivers)
            for name, route in (doc.get("dags") or {}).items()
        },
        timeout_seconds=_seconds(doc.get("timeout", 10), "notifications.timeout"),
    )
