"""Keep the controller's startup objects out of the garbage collector's full passes.

Measured on the validation benchmark: with the modules of a started controller loaded
(about 110,000 container objects: the Kubernetes client's models, SQLAlchemy, the
schema), validating a repository of 1,000 DAG files costs about 2.7 s CPU, against
1.5 s with the collector paused. The difference is all collection, and most of it is
full collections, each of which traverses every object the process holds, startup
objects included, though none of them will ever be garbage: they live as long as the
process does.

`gc.freeze()` moves the objects that exist at that moment into a generation the
collector never traverses. Nothing is paused: every object made afterwards, by any
thread, is collected as before, and frozen objects are still freed by reference
counting when they are dropped. A frozen cycle that became garbage would never be
collected; collecting first, before any thread starts, leaves none to freeze. Pausing
the collector instead (what `kubedag validate` does, a process doing nothing else) is
not open to the controller: its other threads would go without collections meanwhile.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> int:
    """Collect, then exempt every object alive now from later collections; how many."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
