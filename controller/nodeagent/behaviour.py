"""How a scripted pod behaves: read from its annotations or from a scenario file.

Scripted pods run no processes; their containers' durations, exit codes, termination
messages and failures are declared, so load and fault tests can run thousands of pods
on a 2-core machine. A malformed annotation is reported in the pod's status (as a
failed container with the parse error) rather than silently ignored, so a typo in a
test shows up as a clear failure instead of a pod that "succeeded" by default.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PREFIX = "agent.kubedag.io/"
MODE = PREFIX + "mode"  # "scripted" or "process"; absent: the agent's default mode
DURATION = PREFIX + "duration"  # seconds (float) each main container runs
EXIT_CODE = PREFIX + "exit-code"  # main containers' exit code, default 0
TERMINATION_MESSAGE = PREFIX + "termination-message"  # main containers' message
FAILURE = PREFIX + "failure"  # see FAILURES
LOG = PREFIX + "log"  # text written as each main container's log
INIT_DURATION = PREFIX + "init-duration"  # seconds each init container runs, default 0
INIT_EXIT_CODE = PREFIX + "init-exit-code"  # init containers' exit code, default 0
INIT_FAILURE = PREFIX + "init-failure"  # a failure of the init containers (not NodeLost)

# Set on a Node to make the agent lose it: "vanish", "failed" or "unknown".
NODE_LOST = PREFIX + "lost"
# Label on Nodes the agent manages; a Node created with it is adopted by that agent.
NODE_AGENT_LABEL = PREFIX + "agent"

SCRIPTED = "scripted"
PROCESS = "process"
MODES = (SCRIPTED, PROCESS)

OOM_KILLED = "OOMKilled"
IMAGE_PULL_BACKOFF = "ImagePullBackOff"
ERR_IMAGE_PULL = "ErrImagePull"
CREATE_CONTAINER_CONFIG_ERROR = "CreateContainerConfigError"
NODE_LOST_FAILURE = "NodeLost"
FAILURES = (
    OOM_KILLED,
    IMAGE_PULL_BACKOFF,
    ERR_IMAGE_PULL,
    CREATE_CONTAINER_CONFIG_ERROR,
    NODE_LOST_FAILURE,
)
LOST_OUTCOMES = ("vanish", "failed", "unknown")


class BehaviourError(ValueError):
    """A scripted annotation or scenario entry that cannot be understood."""


@dataclass(frozen=True)
class ContainerScript:
    duration: float = 0.0
    exit_code: int = 0
    termination_message: str = ""
    failure: str | None = None
    log: str = ""


@dataclass(frozen=True)
class PodScript:
    main: ContainerScript = field(default_factory=ContainerScript)
    init: ContainerScript = field(default_factory=ContainerScript)


def _number(raw: Any, key: str, kind: type[float] | type[int]) -> Any:
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        wanted = "an integer" if kind is int else "a number"
        raise BehaviourError(f"{key}: expected {wanted}, got {raw!r}") from None
    if value < 0 and kind is float:
        raise BehaviourError(f"{key}: must not be negative, got {raw!r}")
    return value


def _failure(raw: Any, key: str, *, allow_node_lost: bool) -> str | None:
    if raw in (None, ""):
        return None
    allowed = FAILURES if allow_node_lost else FAILURES[:-1]
    if raw not in allowed:
        raise BehaviourError(f"{key}: expected one of {', '.join(allowed)}, got {raw!r}")
    return str(raw)


def script_from_mapping(values: dict[str, Any], *, where: str = "") -> PodScript:
    """Build a PodScript from annotation-style keys (with or without the prefix)."""

    def get(key: str) -> Any:
        return values.get(key, values.get(key.removeprefix(PREFIX)))

    def name(key: str) -> str:
        return f"{where}{key}"

    main = ContainerScript(
        duration=_number(get(DURATION) or 0, name(DURATION), float),
        exit_code=_number(get(EXIT_CODE) or 0, name(EXIT_CODE), int),
        termination_message=str(get(TERMINATION_MESSAGE) or ""),
        failure=_failure(get(FAILURE), name(FAILURE), allow_node_lost=True),
        log=str(get(LOG) or ""),
    )
    init = ContainerScript(
        duration=_number(get(INIT_DURATION) or 0, name(INIT_DURATION), float),
        exit_code=_number(get(INIT_EXIT_CODE) or 0, name(INIT_EXIT_CODE), int),
        failure=_failure(get(INIT_FAILURE), name(INIT_FAILURE), allow_node_lost=False),
    )
    return PodScript(main=main, init=init)


@dataclass(frozen=True)
class ScenarioRule:
    """Pods matching every given field (glob patterns; labels all equal) get `script`."""

    script: PodScript
    namespace: str = "*"
    name: str = "*"
    labels: tuple[tuple[str, str], ...] = ()

    def matches(self, pod: dict[str, Any]) -> bool:
        meta = pod.get("metadata", {})
        labels = meta.get("labels") or {}
        return (
            fnmatch.fnmatchcase(meta.get("namespace", ""), self.namespace)
            and fnmatch.fnmatchcase(meta.get("name", ""), self.name)
            and all(labels.get(k) == v for k, v in self.labels)
        )


def load_scenario(path: Path) -> list[ScenarioRule]:
    """A YAML list of {match: {namespace, name, labels}, <annotation keys without prefix>}."""
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise BehaviourError(f"{path}: cannot read the scenario file: {error}") from None
    if not isinstance(doc, list):
        raise BehaviourError(f"{path}: expected a list of rules")
    rules = []
    for index, entry in enumerate(doc):
        if not isinstance(entry, dict):
            raise BehaviourError(f"{path}: rule {index}: expected a mapping")
        match = entry.get("match") or {}
        labels = tuple(sorted((str(k), str(v)) for k, v in (match.get("labels") or {}).items()))
        rules.append(
            ScenarioRule(
                script=script_from_mapping(entry, where=f"{path}: rule {index}: "),
                namespace=str(match.get("namespace", "*")),
                name=str(match.get("name", "*")),
                labels=labels,
            )
        )
    return rules


def pod_mode(pod: dict[str, Any], *, default: str, scenario: list[ScenarioRule]) -> str:
    annotations = pod.get("metadata", {}).get("annotations") or {}
    mode = annotations.get(MODE)
    if mode in MODES:
        return str(mode)
    if any(key.startswith(PREFIX) for key in annotations):
        return SCRIPTED
    if any(rule.matches(pod) for rule in scenario):
        return SCRIPTED
    return default


def pod_script(pod: dict[str, Any], *, scenario: list[ScenarioRule]) -> PodScript:
    """Annotations win over the scenario file; the first matching rule applies."""
    annotations = pod.get("metadata", {}).get("annotations") or {}
    if any(key.startswith(PREFIX) and key != MODE for key in annotations):
        return script_from_mapping(annotations)
    for rule in scenario:
        if rule.matches(pod):
            return rule.script
    return PodScript()
