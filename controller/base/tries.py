"""Which try: one try of one task instance of one run.

A run expands each task to instances, one per `withItems` item (index 0 without), and
each instance gets tries numbered from 1 (docs/run-semantics.md). These four values
name one try everywhere it appears: its row in the store, its launch order, its pod's
name and labels, its stored logs. A run id is unique across DAGs, so the DAG's name is
not part of the key; where it is wanted (a pod's readable name) it is passed beside it.

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TryKey:
    """One try: `item_index` is 0 for a task without withItems; `try_number` starts at 1."""

    run_id: int
    task: str
    item_index: int
    try_number: int

    def __str__(self) -> str:
        """How messages and events name the try, e.g. `load[2] try 1` (the run aside)."""
        return f"{self.task}[{self.item_index}] try {self.try_number}"
