"""`kubedag cancel`, `retry`, `mark` and `events` through the real CLI entry point."""

from __future__ import annotations

import json
import threading

import pytest

from controller.base.states import DagRunState
from controller.cli import main
from controller.engine.seam import LaunchOrder
from controller.runtime.engine import Engine
from controller.store import Store
from tests.engine.support import dag, task
from tests.runtime.inprocess import Outcome
from tests.runtime.support import Recorder, engine_on, queue_run, run_state, store_dag

PIPELINE = dag(task("extract"), task("load", "extract"), name="sales")


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def fail_load_once(order: LaunchOrder) -> Outcome:
    if order.task.name == "load" and order.key.try_number == 1:
        return Outcome.failed(message="boom")
    return Outcome.succeeded()


def test_retry_through_the_cli_waits_for_the_engine_and_the_run_succeeds(
    store: Store, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store_dag(store, PIPELINE)
    run = queue_run(store, PIPELINE)
    with engine_on(store, Recorder(fail_load_once)) as engine:
        engine.wake([run.id])
        engine.run_until_idle(timeout=10)
        stop = threading.Event()
        thread = threading.Thread(target=lambda: _drive(engine, stop))
        thread.start()
        try:
            code, out, err = cli(
                capsys, "retry", str(run.id), "--database-url", database_url, "--wait", "20"
            )
        finally:
            stop.set()
            thread.join()
        assert (code, err) == (0, "")
        assert out.startswith("request 1 done: run 1 queued again with 1 cleared")
        engine.run_until_idle(timeout=10)
    assert run_state(store, run.id) is DagRunState.SUCCEEDED
    code, out, _ = cli(capsys, "events", str(run.id), "--database-url", database_url)
    assert code == 0
    assert "action-requested   retry of run 1 (1 task instances) requested by cli:" in out
    assert "run-retried" in out


def _drive(engine: Engine, stop: threading.Event) -> None:
    """Step an unthreaded engine from a thread while the CLI waits for its answer."""
    while not stop.is_set():
        if not engine.step():
            stop.wait(0.02)


def test_cancelling_a_finished_run_is_refused_and_changes_nothing(
    store: Store, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store_dag(store, PIPELINE)
    run = queue_run(store, PIPELINE)
    with engine_on(store, Recorder()) as engine:
        engine.wake([run.id])
        engine.run_until_idle(timeout=10)
    code, out, err = cli(capsys, "cancel", str(run.id), "--database-url", database_url)
    assert (code, out) == (2, "")
    assert err == (
        "kubedag cancel: run 1 of sales already succeeded; only a queued or running run "
        "can be cancelled\n"
    )
    with store.transaction() as uow:
        assert uow.pending_requests() == []
        assert [e.kind for e in uow.list_events(run_id=run.id)][-1] == "run-succeeded"


def test_unknown_runs_and_tasks_are_named(
    store: Store, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store_dag(store, PIPELINE)
    run = queue_run(store, PIPELINE)
    code, _, err = cli(capsys, "retry", "41", "--database-url", database_url)
    assert (code, err) == (2, "kubedag retry: no run with id 41; `kubedag runs` lists them\n")
    code, _, err = cli(
        capsys, "mark", str(run.id), "nope", "succeeded", "--database-url", database_url
    )
    assert code == 2
    assert "the run has no task 'nope' (its tasks: extract, load)" in err


def test_a_queued_cancel_reports_its_request_as_json(
    store: Store, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store_dag(store, PIPELINE)
    run = queue_run(store, PIPELINE)
    code, out, _ = cli(
        capsys, "cancel", str(run.id), "--database-url", database_url, "--output", "json"
    )
    assert code == 0
    shown = json.loads(out)
    assert shown["request"]["state"] == "pending"
    assert shown["request"]["kind"] == "cancel-run"


def test_tasks_show_who_cleared_a_try(
    store: Store, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store_dag(store, PIPELINE)
    run = queue_run(store, PIPELINE)
    with engine_on(store, Recorder(fail_load_once)) as engine:
        engine.wake([run.id])
        engine.run_until_idle(timeout=10)
        cli(capsys, "retry", str(run.id), "--database-url", database_url)
        engine.requests_pending()
        engine.run_until_idle(timeout=10)
    code, out, _ = cli(capsys, "tasks", str(run.id), "--database-url", database_url)
    assert code == 0
    (cleared,) = [line for line in out.splitlines() if " cleared " in line]
    assert cleared.split()[:4] == ["load", "0", "2", "cleared"]
    assert "cleared by cli:" in cleared
    code, out, _ = cli(
        capsys, "tasks", str(run.id), "--database-url", database_url, "--output", "json"
    )
    assert [t["setBy"] is not None for t in json.loads(out)] == [False, False, True, False]
