"""Pausing and unpausing a DAG by hand, without a git commit.

The pause is stored on the DAG's row with who set it, and it stands until the DAG file
changes its own `spec.paused` (see `DagQueries.upsert_dag`), so an operator can stop a
DAG at night and a later commit that does not touch that field leaves it stopped.
"""

from __future__ import annotations

from controller.runtime.actions import NotFoundError
from controller.store import DagRecord, Store


def set_paused(store: Store, dag_name: str, *, paused: bool, by: str) -> DagRecord:
    """Pause or unpause `dag_name`, with an event naming who did; NotFoundError if unknown."""
    with store.transaction() as uow:
        if not uow.set_dag_paused(dag_name, paused, by=by):
            raise NotFoundError(f"no DAG named {dag_name!r}; `kubedag status` lists them")
        verb = "paused" if paused else "unpaused"
        uow.append_event(
            kind=f"dag-{verb}",
            message=f"DAG {dag_name} {verb} by {by}",
            dag_name=dag_name,
            data={"by": by},
        )
        record = uow.get_dag(dag_name)
    assert record is not None
    return record
