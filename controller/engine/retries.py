"""When a failed try gets another one, and when that one may start.

Two budgets, because the two failures mean different things. A TASK failure (the
container ran and failed, or hit its deadline) spends one of the task's own retries and
waits the task's exponential backoff. An INFRA failure (the pod never got to run the
task: image pull, unschedulable, node lost) says nothing about the task, so it does not
spend a task retry; it has a budget of its own (`max_infra_retries`) and a short capped
backoff, so a broken cluster cannot make one instance retry forever.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from controller.base.states import FailureKind
from controller.spec.model import RetryBackoff, RetryPolicy

DEFAULT_MAX_INFRA_RETRIES = 3
INFRA_BACKOFF = RetryBackoff(delay_seconds=5.0, factor=2.0, max_delay_seconds=60.0)


def retry_at(
    *,
    policy: RetryPolicy,
    kind: FailureKind,
    task_failures: int,
    infra_failures: int,
    finished_at: datetime,
    max_infra_retries: int = DEFAULT_MAX_INFRA_RETRIES,
) -> datetime | None:
    """When the next try may start, or None when the instance stays failed.

    `task_failures` and `infra_failures` count the failed tries so far, the one just
    failed included: a TASK failure is retried while task_failures <= policy.limit (so at
    most limit + 1 task failures), waiting backoff.delay_for(task_failures).
    """
    if kind is FailureKind.EXPANSION:
        return None
    if kind is FailureKind.INFRA:
        if infra_failures > max_infra_retries:
            return None
        return finished_at + timedelta(seconds=INFRA_BACKOFF.delay_for(infra_failures))
    if task_failures > policy.limit:
        return None
    return finished_at + timedelta(seconds=policy.backoff.delay_for(task_failures))
