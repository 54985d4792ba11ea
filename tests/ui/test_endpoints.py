"""The UI's API routes over a real store: who may act, and what bad requests are told."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest

from controller.base.states import TaskState
from controller.executor.podspec import TASK_CONTAINER
from controller.logstore import LogKey, LogStore
from controller.process.wiring import StartupError, api_token
from controller.settings.loading import load_config
from controller.spec.model import Dag, Param, ParamType, Task, dag_to_dict
from controller.store import NewTaskInstance, Store, TaskInstanceRecord
from controller.ui import Reply
from controller.ui.endpoints import UiEndpoints
from tests.runtime.support import queue_run

TOKEN = "s3cret-token"
DAILY = Dag(
    name="daily",
    tasks=(Task(name="only", image="busybox"),),
    params=(Param(name="epochs", type=ParamType.INTEGER, default=3),),
)
DAG = dag_to_dict(DAILY)


def endpoints(
    store: Store,
    tmp_path: Path,
    *,
    token: str | None = TOKEN,
    api: kubernetes.client.ApiClient | None = None,
    namespace: str = "default",
) -> UiEndpoints:
    with store.transaction() as uow:
        uow.upsert_dag(name="daily", path="d.yaml", revision="a" * 40, spec_hash="h", spec=DAG)
    return UiEndpoints(
        store=store,
        log_store=LogStore(str(tmp_path / "logs")),
        api=api or kubernetes.client.ApiClient(),
        namespace=namespace,
        token=token,
        repo_url="https://github.com/acme/dags.git",
        wake=lambda run_ids: None,
    )


def call(
    api: UiEndpoints, method: str, path: str, body: Any = None, *, token: str | None = TOKEN
) -> tuple[int, Any]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    raw = b"" if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
    reply = api.handle(method, f"/api/v1{path}", headers, raw)
    assert isinstance(reply, Reply)
    assert isinstance(reply.body, bytes)
    return reply.status, json.loads(reply.body)


def runs(store: Store) -> int:
    with store.transaction() as uow:
        return len(uow.list_runs())


@pytest.mark.parametrize("token", [None, "wrong", ""])
def test_an_action_without_the_token_is_refused_and_changes_nothing(
    store: Store, tmp_path: Path, token: str | None
) -> None:
    api = endpoints(store, tmp_path)
    status, answer = call(api, "POST", "/dags/daily/trigger", {}, token=token)
    assert status == 401
    assert "token" in answer["error"]
    assert runs(store) == 0


def test_without_a_configured_token_no_action_is_possible(store: Store, tmp_path: Path) -> None:
    api = endpoints(store, tmp_path, token=None)
    status, answer = call(api, "POST", "/dags/daily/pause", {})
    assert status == 401
    assert "api.tokenFile" in answer["error"]


def test_reads_need_no_token(store: Store, tmp_path: Path) -> None:
    status, answer = call(endpoints(store, tmp_path), "GET", "/dags", token=None)
    assert status == 200
    assert [dag["name"] for dag in answer["dags"]] == ["daily"]


def test_a_trigger_with_the_token_queues_a_run_with_typed_params(
    store: Store, tmp_path: Path
) -> None:
    api = endpoints(store, tmp_path)
    status, answer = call(api, "POST", "/dags/daily/trigger", {"params": {"epochs": 7}})
    assert status == 201
    status, run = call(api, "GET", f"/runs/{answer['id']}")
    assert run["params"] == {"epochs": 7}
    assert run["commitUrl"] == f"https://github.com/acme/dags/commit/{'a' * 40}"


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"params": {"epochs": "many"}}, 400, "epochs"),
        ({"params": {"nope": 1}}, 400, "unknown param"),
        ({"params": [1]}, 400, "object"),
        (b"{not json", 400, "not JSON"),
    ],
)
def test_a_bad_trigger_is_told_why_and_queues_nothing(
    store: Store, tmp_path: Path, body: Any, status: int, words: str
) -> None:
    answer = call(endpoints(store, tmp_path), "POST", "/dags/daily/trigger", body)
    assert answer[0] == status
    assert words in answer[1]["error"]
    assert runs(store) == 0


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/dags/nope", 404),
        ("GET", "/runs/999", 404),
        ("GET", "/runs/999/graph", 404),
        ("GET", "/nothing", 404),
        ("POST", "/dags/nope/trigger", 404),
        ("DELETE", "/dags", 405),
        ("GET", "/dags/daily/grid?limit=x", 400),
    ],
)
def test_unknown_things_and_bad_requests_get_a_json_error(
    store: Store, tmp_path: Path, method: str, path: str, status: int
) -> None:
    answer = call(endpoints(store, tmp_path), method, path, {} if method == "POST" else None)
    assert answer[0] == status
    assert answer[1]["error"]


def test_pause_and_unpause_are_stored(store: Store, tmp_path: Path) -> None:
    api = endpoints(store, tmp_path)
    assert call(api, "POST", "/dags/daily/pause", {})[0] == 200
    assert call(api, "GET", "/dags/daily")[1]["state"] == "paused"
    assert call(api, "POST", "/dags/daily/unpause", {})[0] == 200
    assert call(api, "GET", "/dags/daily")[1]["state"] == "active"


def test_other_paths_are_left_to_the_rest_of_the_server(store: Store, tmp_path: Path) -> None:
    assert endpoints(store, tmp_path).handle("GET", "/metrics", {}, b"") is None


def test_the_token_is_read_from_its_file(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(f"{TOKEN}\n")
    config = load_config(path=None, environ={"KUBEDAG_API_TOKEN_FILE": str(path)})
    assert api_token(config) == TOKEN


def test_an_empty_token_file_stops_the_controller(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("\n")
    config = load_config(path=None, environ={}, overrides={"api.tokenFile": str(path)})
    with pytest.raises(StartupError, match=r"api\.tokenFile: .* is empty"):
        api_token(config)


def test_a_token_file_not_there_turns_actions_off_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # As the shipped manifests mount it: from an optional Secret, maybe not created.
    path = tmp_path / "api" / "token"
    config = load_config(path=None, environ={}, overrides={"api.tokenFile": str(path)})
    with caplog.at_level(logging.WARNING):
        assert api_token(config) is None
    assert f"api.tokenFile: no file at {path}, so the API refuses every action" in caplog.text


def running_try(store: Store, *, pod_name: str) -> TaskInstanceRecord:
    run = queue_run(store, DAILY)
    with store.transaction() as uow:
        (row,) = uow.add_task_instances([NewTaskInstance(run_id=run.id, task_name="only")])
        assert uow.cas_task_state(
            row.id, expected=TaskState.PENDING, new=TaskState.RUNNING, pod_name=pod_name
        )
        (running,) = uow.list_task_instances(run.id)
    return running


def test_a_log_whose_pod_went_after_its_try_was_read_comes_from_the_log_store(
    store: Store, tmp_path: Path, kube: kubernetes.client.ApiClient, namespace: str
) -> None:
    # The try reads as running, but its pod is gone: it finished, the cleaner stored its
    # log and deleted it between the endpoint's read of the row and of the pod.
    api = endpoints(store, tmp_path, api=kube, namespace=namespace)
    row = running_try(store, pod_name="daily-only-gone")
    path = f"/api/v1/runs/{row.run_id}/tasks/only/0/log"

    missing = api.handle("GET", path, {}, b"")
    assert isinstance(missing, Reply)
    assert missing.status == 404
    assert isinstance(missing.body, bytes)
    assert "daily-only-gone" in json.loads(missing.body)["error"]

    LogStore(str(tmp_path / "logs")).write(LogKey(row.key, TASK_CONTAINER), "all of it\n")
    stored = api.handle("GET", path, {}, b"")
    assert isinstance(stored, Reply)
    assert (stored.status, stored.body) == (200, b"all of it\n")
