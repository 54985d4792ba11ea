"""The API's run actions and reads over a real store and engine: the same answers as the CLI."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import kubernetes.client

from controller.base.states import DagRunState
from controller.engine.seam import LaunchOrder
from controller.logstore import LogStore
from controller.metrics import Metrics
from controller.process.http import HttpServer
from controller.runtime.engine import Engine
from controller.spec.model import Dag
from controller.store import Store
from controller.ui import Reply
from controller.ui.endpoints import UiEndpoints
from tests.engine.support import dag, task
from tests.runtime.inprocess import InProcessExecutor, Outcome
from tests.runtime.support import (
    Recorder,
    engine_on,
    queue_run,
    run_state,
    store_dag,
    wait_for,
)

TOKEN = "s3cret-token"
NO_POLL = 3600.0
"""Longer than any test: a run that starts did not wait for the poll."""
PIPELINE = dag(task("extract"), task("load", "extract"), name="sales")


def endpoints(store: Store, tmp_path: Path, **options: Any) -> UiEndpoints:
    return UiEndpoints(
        store=store,
        log_store=LogStore(str(tmp_path / "logs")),
        api=kubernetes.client.ApiClient(),
        namespace="default",
        token=TOKEN,
        repo_url=None,
        **{"wake": lambda run_ids: None, **options},
    )


def call(
    api: UiEndpoints, method: str, path: str, body: Any = None, *, token: str | None = TOKEN
) -> tuple[int, Any]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    raw = b"" if body is None else json.dumps(body).encode()
    reply = api.handle(method, f"/api/v1{path}", headers, raw)
    assert isinstance(reply, Reply)
    assert isinstance(reply.body, bytes)
    return reply.status, json.loads(reply.body)


def fail_load_once(order: LaunchOrder) -> Outcome:
    if order.task.name == "load" and order.key.try_number == 1:
        return Outcome.failed(message="boom")
    return Outcome.succeeded("ok")


def test_cancel_through_the_api_is_applied_by_the_engine_and_pollable(
    store: Store, tmp_path: Path
) -> None:
    store_dag(store, PIPELINE)
    run = queue_run(store, PIPELINE)
    pending: list[str] = []
    api = endpoints(store, tmp_path, requests_pending=lambda: pending.append("woken"))
    status, answer = call(api, "POST", f"/runs/{run.id}/cancel", {"gracePeriodSeconds": 3})
    assert status == 202
    assert answer["request"]["state"] == "pending"
    assert answer["request"]["requestedBy"] == "api"
    assert pending == ["woken"]
    with engine_on(store, Recorder()) as engine:
        engine.run_until_idle(timeout=10)
    status, request = call(api, "GET", f"/requests/{answer['request']['id']}", token=None)
    assert (status, request["state"]) == (200, "done")
    assert run_state(store, run.id) is DagRunState.CANCELLED
    status, again = call(api, "POST", f"/runs/{run.id}/cancel", {})
    assert (status, again["request"]) == (200, None)


def test_retry_and_mark_through_the_api_rerun_the_run_to_success(
    store: Store, tmp_path: Path
) -> None:
    store_dag(store, PIPELINE)
    run = queue_run(store, PIPELINE)
    api = endpoints(store, tmp_path)
    with engine_on(store, Recorder(fail_load_once)) as engine:
        engine.wake([run.id])
        engine.run_until_idle(timeout=10)
        assert call(api, "POST", f"/runs/{run.id}/retry", {"latest": False})[0] == 202
        engine.requests_pending()
        engine.run_until_idle(timeout=10)
        assert run_state(store, run.id) is DagRunState.SUCCEEDED
        status, _answer = call(
            api, "POST", f"/runs/{run.id}/tasks/load/0/mark", {"state": "failed"}
        )
        assert status == 202
        engine.requests_pending()
        engine.run_until_idle(timeout=10)
    assert run_state(store, run.id) is DagRunState.FAILED
    status, listed = call(api, "GET", "/runs?dag=sales&state=failed", token=None)
    assert status == 200
    assert [r["id"] for r in listed["runs"]] == [run.id]


def test_refusals_and_bad_bodies_say_why_and_queue_nothing(store: Store, tmp_path: Path) -> None:
    store_dag(store, PIPELINE)
    run = queue_run(store, PIPELINE)
    api = endpoints(store, tmp_path)
    assert call(api, "POST", f"/runs/{run.id}/retry", {}) == (
        409,
        {
            "error": f"run {run.id} of sales is queued; only a finished run can be retried "
            "(cancel it first)"
        },
    )
    assert call(api, "POST", "/runs/999/cancel", {})[0] == 404
    status, answer = call(api, "POST", f"/runs/{run.id}/cancel", {"itemIndex": True})
    assert (status, answer) == (400, {"error": "itemIndex must be an integer"})
    status, answer = call(api, "POST", f"/runs/{run.id}/tasks/load/0/mark", {})
    assert status == 400
    assert call(api, "POST", f"/runs/{run.id}/cancel", {}, token=None)[0] == 401
    assert call(api, "GET", "/runs?state=lost", token=None)[0] == 400
    with store.transaction() as uow:
        assert uow.pending_requests() == []


def test_reads_can_be_made_to_need_the_token(store: Store, tmp_path: Path) -> None:
    api = endpoints(store, tmp_path, protect_reads=True)
    assert call(api, "GET", "/runs", token=None)[0] == 401
    assert call(api, "GET", "/runs")[0] == 200


def test_a_pause_through_the_api_says_who_paused(store: Store, tmp_path: Path) -> None:
    store_dag(store, PIPELINE)
    api = endpoints(store, tmp_path)
    assert call(api, "POST", "/dags/sales/pause", {}) == (
        200,
        {"dag": "sales", "paused": True, "pausedBy": "api"},
    )
    _status, listed = call(api, "GET", "/dags", token=None)
    assert listed["dags"][0]["pausedBy"] == "api"


def test_a_backfill_through_the_api_gives_each_date_its_run(store: Store, tmp_path: Path) -> None:
    daily = Dag(name="daily", tasks=(task("only"),), schedule="0 3 * * *")
    store_dag(store, daily)
    woken: list[list[int]] = []
    api = UiEndpoints(
        store=store,
        log_store=LogStore(str(tmp_path / "logs")),
        api=kubernetes.client.ApiClient(),
        namespace="default",
        token=TOKEN,
        repo_url=None,
        wake=woken.append,
    )
    week = {"from": "2026-03-02", "to": "2026-03-08"}
    status, dry = call(api, "POST", "/dags/daily/backfill", {**week, "dryRun": True})
    assert (status, len(dry["runs"]), woken) == (200, 7, [])
    status, done = call(api, "POST", "/dags/daily/backfill", {**week, "maxActiveRuns": 2})
    assert status == 201
    assert woken == [[run["id"] for run in done["runs"]]]
    status, again = call(api, "POST", "/dags/daily/backfill", week)
    assert [run["created"] for run in again["runs"]] == [False] * 7
    assert call(api, "POST", "/dags/daily/backfill", {"from": "2026-03-02"})[0] == 400
    assert call(api, "POST", "/dags/nope/backfill", week)[0] == 404


def post(port: int, path: str, body: Any) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1{path}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - our server
        return int(response.status), json.loads(response.read())


def test_a_trigger_through_the_http_api_starts_its_run_without_a_poll(
    store: Store, tmp_path: Path
) -> None:
    """On both databases: the API wakes the engine in its own process (on SQLite, the
    only way but the poll; on PostgreSQL, beside the notification)."""
    store_dag(store, PIPELINE)
    executor = InProcessExecutor(Recorder(), workers=4)
    engine = Engine(store, executor, poll_seconds=NO_POLL)
    api = endpoints(store, tmp_path, wake=engine.wake)
    server = HttpServer(metrics=Metrics(), host="127.0.0.1", port=0, api=api.handle)
    engine.start()
    server.start()
    try:
        # The first run may be found by the look the engine takes when it starts; the
        # later ones only by being woken.
        for _ in range(3):
            status, answer = post(server.port, f"/dags/{PIPELINE.name}/trigger", {})
            assert status == 201
            wait_for(lambda run_id=answer["id"]: run_state(store, run_id) is DagRunState.SUCCEEDED)
    finally:
        server.stop()
        engine.stop()
        executor.close()
