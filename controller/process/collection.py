"""How the controller process sets up Python's garbage collector, once, at startup.

Measured on the validation benchmark (1,000 DAG files, in a process holding a started
controller's modules, about 110,000 container objects): with the collector as Python
sets it up, validating costs about a second more CPU than with the collector paused,
and `gc.callbacks` shows all of that second in collections that collect nothing:

- full collections, each traversing every object of the process, the startup ones
  included, though those live as long as the process does;
- young collections every 700 net allocations, fewer than one file's YAML node tree
  takes: each file's transient objects are carried into the older generations, where
  they make full collections come at the highest rate the thresholds allow.

So the process, once everything is loaded and built and before any thread starts:

- collects, then freezes what is alive (`gc.freeze()`): those objects move to a
  generation the collector never traverses. They are still freed by reference counting
  when dropped; a frozen cycle that became garbage would stay, and collecting first
  leaves none to freeze;
- raises the young generation's threshold to YOUNG_THRESHOLD allocations, above what
  one DAG file's check keeps alive at once, so its transient objects die young.

Nothing is paused: every object made afterwards, by any thread, is collected as
before, a young collection traverses at most about YOUNG_THRESHOLD objects (a
millisecond or two), and garbage cycles wait at most that many allocations longer.
Both settings are made once for the whole life of the process, not toggled while one
thread validates; pausing the collector, what `kubedag validate` does as a process
doing nothing else, is not open to the controller: its other threads would go
without collections meanwhile.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000
"""Net container allocations between young collections (Python's default: 700)."""


def tune_garbage_collection() -> int:
    """Freeze the objects alive now and raise the young threshold; how many were frozen."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
    return gc.get_freeze_count()
