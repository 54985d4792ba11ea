"""What a DAG may ask of its worker pods: whose identity they run as, which Secrets they read.

Whoever can push to the DAG repository writes pod fields the controller then creates
with its own API rights. Without a rule here, a task could run as the controller's
ServiceAccount (and so create pods, or read what the controller reads) or import any
Secret of the workers' namespace, such as the database URL or the git token.

The policy is the operator's (the controller's configuration), not the DAG's: a DAG
may name only the Secrets in `executor.allowedSecrets` and never the controller's
ServiceAccount. It is checked twice with the same walk: when a DAG is validated (a
problem at the field's line and column, so the DAG is refused before it runs) and
again on each try before its pod is created (a DAG stored before the policy changed
does not slip through).

Secrets reach a pod through env `valueFrom.secretKeyRef`, `envFrom[].secretRef`, and
the `secret` and `projected` volumes of podOverrides; each is checked.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from controller.spec.loader import Document, Path
from controller.spec.model import JSON
from controller.spec.problems import Problem
from controller.spec.report import Reporter, as_dict, as_list

DEFAULT_CONTROLLER_SERVICE_ACCOUNT = "kubedag-controller"


@dataclass(frozen=True)
class PodPolicy:
    """The operator's limits on the pod fields a DAG sets."""

    allowed_secrets: frozenset[str] = frozenset()
    """The Secrets a task may read; every other Secret is refused."""
    controller_service_account: str = DEFAULT_CONTROLLER_SERVICE_ACCOUNT
    """The controller's own ServiceAccount, which no task may run as."""


@dataclass(frozen=True)
class Violation:
    """One pod field a policy refuses, at a path relative to the task (or defaults)."""

    where: Path
    message: str


def task_violations(
    policy: PodPolicy,
    *,
    env: Sequence[JSON],
    env_from: Sequence[JSON],
    pod_overrides: Mapping[str, JSON],
) -> list[Violation]:
    """Every field of one task's (or the defaults') env, envFrom and podOverrides the
    policy refuses. Wrongly shaped parts are skipped: the schema reports them."""
    found = [
        _secret_violation(policy, where, name)
        for where, name in _secret_names(env, env_from, pod_overrides)
    ]
    account = pod_overrides.get("serviceAccountName")
    if account == policy.controller_service_account:
        found.append(
            Violation(
                ("podOverrides", "serviceAccountName"),
                f"serviceAccountName {account!r} is the controller's own ServiceAccount; "
                "a task may not run with the controller's rights",
            )
        )
    return [violation for violation in found if violation is not None]


def _secret_violation(policy: PodPolicy, where: Path, name: str) -> Violation | None:
    if name in policy.allowed_secrets:
        return None
    allowed = ", ".join(sorted(policy.allowed_secrets)) or "none"
    return Violation(
        where,
        f"Secret {name!r} is not in the controller's executor.allowedSecrets "
        f"(allowed: {allowed}); ask the operator to allow it",
    )


def _secret_names(
    env: Sequence[JSON], env_from: Sequence[JSON], pod_overrides: Mapping[str, JSON]
) -> Iterator[tuple[Path, str]]:
    for index, variable in enumerate(env):
        ref = as_dict(as_dict(as_dict(variable).get("valueFrom")).get("secretKeyRef"))
        yield from _named(("env", index, "valueFrom", "secretKeyRef", "name"), ref.get("name"))
    for index, entry in enumerate(env_from):
        ref = as_dict(as_dict(entry).get("secretRef"))
        yield from _named(("envFrom", index, "secretRef", "name"), ref.get("name"))
    for index, volume in enumerate(as_list(pod_overrides.get("volumes"))):
        where: Path = ("podOverrides", "volumes", index)
        secret = as_dict(as_dict(volume).get("secret"))
        yield from _named((*where, "secret", "secretName"), secret.get("secretName"))
        projected = as_dict(as_dict(volume).get("projected"))
        for source_index, source in enumerate(as_list(projected.get("sources"))):
            ref = as_dict(as_dict(source).get("secret"))
            yield from _named(
                (*where, "projected", "sources", source_index, "secret", "name"), ref.get("name")
            )


def _named(where: Path, name: JSON) -> Iterator[tuple[Path, str]]:
    if isinstance(name, str):
        yield where, name


def policy_problems(document: Document, *, path: str, policy: PodPolicy) -> list[Problem]:
    """The policy's refusals in one DAG file, each at its field's line and column."""
    report = Reporter(document, path)
    spec = as_dict(as_dict(document.value).get("spec"))
    owners: list[tuple[Path, dict[str, JSON]]] = [
        (("spec", "defaults"), as_dict(spec.get("defaults")))
    ]
    owners += [
        (("spec", "tasks", index), as_dict(task))
        for index, task in enumerate(as_list(spec.get("tasks")))
    ]
    for where, owner in owners:
        for violation in task_violations(
            policy,
            env=as_list(owner.get("env")),
            env_from=as_list(owner.get("envFrom")),
            pod_overrides=as_dict(owner.get("podOverrides")),
        ):
            report.at((*where, *violation.where), violation.message)
    return report.problems
