"""What the database knows that a plan needs: latest scheduled runs and open runs.

Read only when the user names a database: a plan in CI usually has none, and then the
plan assumes each active DAG kept to its schedule and says so.
"""

from __future__ import annotations

from collections.abc import Iterable

from controller.base.states import DagRunState, RunType
from controller.plan.compute import History, OpenRun
from controller.store import NotMigratedError, Store, display_url
from controller.store.errors import DatabaseError

OPEN_STATES = (DagRunState.QUEUED, DagRunState.RUNNING)
MAX_OPEN_RUNS = 1000


class HistoryError(Exception):
    """The database could not be read; the message names it without its password."""


def history_from(url: str, names: Iterable[str]) -> History:
    """`read_history` from the database at `url`; HistoryError when it cannot be read."""
    try:
        store = Store.connect(url)
    except NotMigratedError as error:
        raise HistoryError(str(error)) from error
    except (DatabaseError, ValueError) as error:
        raise HistoryError(f"cannot read {display_url(url)}: {error}") from error
    try:
        return read_history(store, names)
    except DatabaseError as error:
        raise HistoryError(f"cannot read {display_url(url)}: {error}") from error
    finally:
        store.close()


def read_history(store: Store, names: Iterable[str]) -> History:
    """The latest scheduled run and the open runs of each DAG in `names`."""
    wanted = sorted(set(names))
    with store.transaction() as uow:
        last = {name: uow.last_run(name, run_type=RunType.SCHEDULED) for name in wanted}
        open_runs: dict[str, list[OpenRun]] = {name: [] for name in wanted}
        for run in uow.list_runs(states=OPEN_STATES, limit=MAX_OPEN_RUNS):
            if run.dag_name in open_runs:
                open_runs[run.dag_name].append(
                    OpenRun(run.id, run.revision, run.state.value, run.logical_date)
                )
    return History(
        last_runs={name: None if run is None else run.logical_date for name, run in last.items()},
        open_runs={
            name: tuple(sorted(runs, key=lambda r: r.run_id)) for name, runs in open_runs.items()
        },
    )
