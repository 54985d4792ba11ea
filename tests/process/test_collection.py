"""The controller tunes the garbage collector at startup without pausing it."""

from __future__ import annotations

import gc

from controller.process.collection import YOUNG_THRESHOLD, tune_garbage_collection


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_startup_objects_are_frozen_and_new_cycles_still_collected() -> None:
    survivor = [object()]
    thresholds = gc.get_threshold()
    try:
        frozen = tune_garbage_collection()
        assert frozen == gc.get_freeze_count() > 0
        assert not any(o is survivor for o in gc.get_objects()), "out of every generation"
        assert gc.isenabled()
        assert gc.get_threshold() == (YOUNG_THRESHOLD, *thresholds[1:])
        cycle = _Cycle()
        del cycle
        assert gc.collect() >= 1, "a cycle made after the freeze is collected as before"
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
