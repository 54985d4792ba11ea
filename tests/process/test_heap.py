"""The controller freezes its startup objects without pausing the collector."""

from __future__ import annotations

import gc

from controller.process.heap import freeze_startup_heap


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_freezing_exempts_the_startup_objects_and_still_collects_new_cycles() -> None:
    survivor = [object()]
    try:
        frozen = freeze_startup_heap()
        assert frozen > 0
        assert frozen == gc.get_freeze_count()
        assert not any(o is survivor for o in gc.get_objects()), "out of every generation"
        assert gc.isenabled()
        cycle = _Cycle()
        del cycle
        assert gc.collect() >= 1, "a cycle made after the freeze is collected as before"
    finally:
        gc.unfreeze()
