"""Deterministic pod names and safe label values for worker pods.

A pod name is the executor's idempotency key: the same (dag, run, task, item, try)
must always give the same name, so that a second create after a crash or a failover is
answered AlreadyExists and adopted instead of launching the task twice. Names and label
values have hard limits (63 characters, a restricted alphabet) that long DAG and task
names exceed; plain truncation would make two identities collide, so whatever is cut
is replaced by a hash of the full, uncut identity.

Pure: no Kubernetes client, no I/O.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re

from controller.base.tries import TryKey

MAX_LENGTH = 63
"""Kubernetes' limit for a DNS-1123 label and for a label value."""

HASH_LENGTH = 10
"""Base32 characters of SHA-256 kept: 50 bits, so collisions need ~2**25 identities."""

LABEL_PREFIX = "kubedag.io/"
MANAGED_BY_LABEL = LABEL_PREFIX + "managed-by"
MANAGED_BY_VALUE = "kubedag"
DAG_LABEL = LABEL_PREFIX + "dag"
RUN_ID_LABEL = LABEL_PREFIX + "run-id"
TASK_LABEL = LABEL_PREFIX + "task"
ITEM_LABEL = LABEL_PREFIX + "item"
TRY_LABEL = LABEL_PREFIX + "try"
CONTROLLER_LABEL = LABEL_PREFIX + "controller"
REVISION_ANNOTATION = LABEL_PREFIX + "revision"

MANAGED_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"
"""The label selector that finds every worker pod kubedag created."""

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_NOT_DNS = re.compile(r"[^a-z0-9]+")
_NOT_LABEL_VALUE = re.compile(r"[^-A-Za-z0-9_.]+")


def short_hash(*parts: object) -> str:
    """A lowercase base32 digest of `parts`; JSON-encoded so ("a-b", "c") != ("a", "b-c")."""
    canonical = json.dumps(parts, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode("utf-8")).digest()
    return base64.b32encode(digest).decode("ascii").lower()[:HASH_LENGTH]


def is_label_value(value: str) -> bool:
    return len(value) <= MAX_LENGTH and _LABEL_VALUE.match(value) is not None


def _dns_piece(text: str, length: int) -> str:
    """`text` lowercased, reduced to DNS characters, cut to `length`, no edge hyphens."""
    return _NOT_DNS.sub("-", text.lower())[:length].strip("-")


def pod_name(*, dag: str, key: TryKey) -> str:
    """The worker pod's name: `<dag>-<task>-<hash>-<run>-<item>-<try>` within 63 characters.

    The hash covers the full identity, so the readable parts may be truncated (or, for
    absurdly large numbers, dropped) without two identities ever sharing a name.
    """
    run_id, task, item_index, try_number = key.run_id, key.task, key.item_index, key.try_number
    for label, number in (("run_id", run_id), ("item_index", item_index), ("try", try_number)):
        if number < 0:
            raise ValueError(f"{label} must not be negative, got {number}")
    digest = short_hash(dag, run_id, task, item_index, try_number)
    suffix = f"{digest}-{run_id}-{item_index}-{try_number}"
    if len(suffix) > MAX_LENGTH:
        suffix = digest
    budget = MAX_LENGTH - len(suffix) - 1
    prefix = _readable_prefix(_dns_piece(dag, MAX_LENGTH), _dns_piece(task, MAX_LENGTH), budget)
    return f"{prefix}-{suffix}" if prefix else suffix


def _readable_prefix(dag: str, task: str, budget: int) -> str:
    """`dag-task` within `budget` characters, sharing the cut so both stay recognisable."""
    if budget <= 0:
        return ""
    if len(dag) + 1 + len(task) <= budget:
        return "-".join(part for part in (dag, task) if part)
    task_length = min(len(task), max(budget - 1 - len(dag), (budget - 1) // 2))
    dag_length = budget - 1 - task_length
    parts = (dag[:dag_length].strip("-"), task[:task_length].strip("-"))
    return "-".join(part for part in parts if part)


def label_value(value: str) -> str:
    """`value` itself when Kubernetes accepts it as a label value, else a cut + hash.

    The result of a cut ends in a hash of the whole original value, so distinct values
    stay distinct; the full value belongs in an annotation beside the label.
    """
    if is_label_value(value):
        return value
    digest = short_hash(value)
    readable = _NOT_LABEL_VALUE.sub("-", value)[: MAX_LENGTH - HASH_LENGTH - 1]
    readable = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", readable)
    return f"{readable}-{digest}" if readable else digest
