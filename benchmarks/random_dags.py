"""The seeded random DAGs the planner and engine benchmarks run, generated in one place.

Both benchmarks must keep planning the very same DAGs from one version to the next, or
their figures stop being comparable: the random draws are made in a fixed order, and a
draw an option turns off is not made at all, so each option leaves the others' DAGs as
they were.
"""

from __future__ import annotations

import random

from controller.spec.model import Dag, RetryBackoff, RetryPolicy, Task

WIDTH = 100


def layered_dag(
    tasks: int,
    *,
    seed: int,
    name: str = "bench",
    retry_once: bool = False,
    fan_out: bool = False,
    shuffled: bool = False,
) -> Dag:
    """Layers of WIDTH tasks, each depending on 1-3 tasks of the three layers above.

    About one in five reads its first upstream's result in a template. ``retry_once``
    gives every task one immediate retry; ``fan_out`` makes about one task in twenty a
    withItems over 2-10 items; ``shuffled`` lists the tasks in random order instead of
    layer by layer.
    """
    rng = random.Random(seed)
    retries = (
        RetryPolicy(limit=1, backoff=RetryBackoff(delay_seconds=0)) if retry_once else RetryPolicy()
    )
    specs: list[Task] = []
    for position in range(tasks):
        layer = position // WIDTH
        window = range(max(0, layer - 3) * WIDTH, layer * WIDTH)
        parents = (
            sorted({f"t{rng.choice(window)}" for _ in range(rng.randint(1, 3))}) if layer else []
        )
        command = ["run", "{{ run.logicalDate }}"]
        if parents and rng.random() < 0.2:
            command.append(f"{{{{ tasks.{parents[0]}.result }}}}")
        task = Task(
            name=f"t{position}",
            image="busybox",
            command=tuple(command),
            depends_on=tuple(parents),
            retries=retries,
            with_items=(
                tuple(range(rng.randint(2, 10))) if fan_out and rng.random() < 0.05 else None
            ),
        )
        specs.append(task)
    if shuffled:
        rng.shuffle(specs)
    return Dag(name=name, tasks=tuple(specs), max_active_tasks=tasks)
