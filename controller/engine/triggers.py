"""Trigger rules: whether a task starts, waits, or is finished without running.

Airflow's semantics, judged over *every instance of every upstream task* (a withItems
upstream with three items counts as three upstreams). Only finished instances count: a
failed try that will be retried is not a failure yet. Letters: N upstream instances,
S succeeded, F failed or upstream_failed, K skipped, D = S + F + K finished. Rows are
checked top to bottom; the first that matches decides.

| rule       | upstream_failed | skipped                | run          | otherwise |
|------------|-----------------|------------------------|--------------|-----------|
| allSuccess | F > 0           | K > 0                  | S = N        | wait      |
| allFailed  | -               | S + K > 0              | F = N        | wait      |
| allDone    | -               | -                      | D = N        | wait      |
| oneSuccess | D = N, K < N    | D = N, K = N           | S > 0 (1st)  | wait      |
| oneFailed  | -               | D = N, F = 0           | F > 0 (1st)  | wait      |
| noneFailed | F > 0           | -                      | D = N        | wait      |

For oneSuccess and oneFailed the run column is checked first (one success is enough
even if others failed). A task without upstreams runs at once whatever its rule.
Decisions only move from wait to a final answer: the counts only grow, and every final
row stays true as they do, so a decision once made is never revisited.

The trap avoided is cost: summing N, S, F, K over a downstream task's upstream instances
on every event is O(instances x edges). Instead each upstream *task* raises a few
monotonic flags (any succeeded, all finished, ...) at most once each, and a downstream
task keeps counts of how many of its upstream tasks raised each flag. Each row above is
an equivalent condition on those counts (S = N iff every upstream task has all
instances succeeded; S > 0 iff some upstream task has a success; ...), so judging is
O(1) and a whole run costs O(instances + edges).
"""

from __future__ import annotations

import enum
from typing import assert_never

from controller.spec.model import TriggerRule

ANY_SUCCEEDED = 1
ANY_FAILED = 2
ANY_SKIPPED = 4
ALL_DONE = 8
ALL_SUCCEEDED = 16
ALL_FAILED = 32
ALL_SKIPPED = 64
_FLAGS = (ANY_SUCCEEDED, ANY_FAILED, ANY_SKIPPED, ALL_DONE, ALL_SUCCEEDED, ALL_FAILED, ALL_SKIPPED)


class Decision(enum.Enum):
    WAIT = "wait"
    RUN = "run"
    SKIP = "skip"
    UPSTREAM_FAILED = "upstream_failed"


def task_flags(*, size: int, succeeded: int, failed: int, skipped: int) -> int:
    """The flags one upstream task raises, from the outcomes of its finished instances."""
    done = succeeded + failed + skipped
    flags = 0
    if succeeded:
        flags |= ANY_SUCCEEDED
    if failed:
        flags |= ANY_FAILED
    if skipped:
        flags |= ANY_SKIPPED
    if done == size:
        flags |= ALL_DONE
        if succeeded == size:
            flags |= ALL_SUCCEEDED
        elif failed == size:
            flags |= ALL_FAILED
        elif skipped == size:
            flags |= ALL_SKIPPED
    return flags


class UpstreamSummary:
    """For one downstream task: how many of its upstream tasks raised each flag."""

    __slots__ = ("counts", "upstream_tasks")

    def __init__(self, upstream_tasks: int) -> None:
        self.upstream_tasks = upstream_tasks
        self.counts = dict.fromkeys(_FLAGS, 0)

    def raise_flags(self, new_flags: int) -> None:
        """Count flags an upstream task has just raised (each task raises each flag once)."""
        for flag in _FLAGS:
            if new_flags & flag:
                self.counts[flag] += 1

    def decide(self, rule: TriggerRule) -> Decision:
        if self.upstream_tasks == 0:
            return Decision.RUN
        counts = self.counts
        every = self.upstream_tasks
        all_done = counts[ALL_DONE] == every
        if rule is TriggerRule.ALL_SUCCESS:
            if counts[ANY_FAILED]:
                return Decision.UPSTREAM_FAILED
            if counts[ANY_SKIPPED]:
                return Decision.SKIP
            return Decision.RUN if counts[ALL_SUCCEEDED] == every else Decision.WAIT
        if rule is TriggerRule.ALL_FAILED:
            if counts[ANY_SUCCEEDED] or counts[ANY_SKIPPED]:
                return Decision.SKIP
            return Decision.RUN if counts[ALL_FAILED] == every else Decision.WAIT
        if rule is TriggerRule.ALL_DONE:
            return Decision.RUN if all_done else Decision.WAIT
        if rule is TriggerRule.ONE_SUCCESS:
            if counts[ANY_SUCCEEDED]:
                return Decision.RUN
            if not all_done:
                return Decision.WAIT
            return Decision.SKIP if counts[ALL_SKIPPED] == every else Decision.UPSTREAM_FAILED
        if rule is TriggerRule.ONE_FAILED:
            if counts[ANY_FAILED]:
                return Decision.RUN
            return Decision.SKIP if all_done else Decision.WAIT
        if rule is TriggerRule.NONE_FAILED:
            if counts[ANY_FAILED]:
                return Decision.UPSTREAM_FAILED
            return Decision.RUN if all_done else Decision.WAIT
        assert_never(rule)
