"""The JSON endpoints the web UI reads and acts through, under ``/api/v1/``.

Reads are open (the UI is read-only without a token); every action needs the bearer
token from the file the operator mounted, compared in constant time, and without a
configured token no action is possible at all: there are no anonymous writes. Errors are
``{"error": "one line"}`` with the status that says what to do: 401 for a missing or
wrong token, 404 for an unknown DAG or run, 400 for bad input.

A task's log is streamed as ``text/plain``: a finished try's from the log store, a
running one's followed from its pod until the container ends, and if the executor
deletes the pod mid-follow (it does, right after storing the log), the rest comes from
the store, as `kubedag logs --follow` does.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote

from controller.base.states import DagRunState
from controller.executor.kubeclient import ApiClient
from controller.executor.podlogs import LogFollow, PodGoneError, read_pod_logs
from controller.executor.podspec import TASK_CONTAINER
from controller.logstore import LogKey, LogStore
from controller.operations.dagstatus import collect, dag_state
from controller.operations.pausing import set_paused
from controller.runtime.actions import ActionRefusedError, NotFoundError
from controller.runtime.manual import TriggerError, trigger_run
from controller.spec.model import dag_from_dict
from controller.spec.params import ParamError
from controller.store import DagRunRecord, Store, TaskInstanceRecord
from controller.ui import Reply, run_actions, views
from controller.ui.forge import commit_url
from controller.ui.run_actions import BadRequestError

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
DEFAULT_PAGE = 25


class _RefusedError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _json(status: int, data: Any) -> Reply:
    return Reply(status, json.dumps(data).encode())


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


Route = tuple[str, re.Pattern[str], str]
ROUTES: list[Route] = [
    ("GET", re.compile(r"/dags"), "_dags"),
    ("GET", re.compile(r"/dags/(?P<dag>[^/]+)"), "_dag"),
    ("GET", re.compile(r"/dags/(?P<dag>[^/]+)/grid"), "_grid"),
    ("GET", re.compile(r"/runs/(?P<run>\d+)"), "_run"),
    ("GET", re.compile(r"/runs/(?P<run>\d+)/graph"), "_graph"),
    ("GET", re.compile(r"/runs/(?P<run>\d+)/tasks"), "_instances"),
    ("GET", re.compile(r"/runs/(?P<run>\d+)/events"), "_events"),
    ("GET", re.compile(r"/runs/(?P<run>\d+)/tasks/(?P<task>[^/]+)/(?P<item>\d+)"), "_tries"),
    ("GET", re.compile(r"/runs/(?P<run>\d+)/tasks/(?P<task>[^/]+)/(?P<item>\d+)/log"), "_log"),
    ("POST", re.compile(r"/dags/(?P<dag>[^/]+)/trigger"), "_trigger"),
    ("POST", re.compile(r"/dags/(?P<dag>[^/]+)/(?P<verb>pause|unpause)"), "_pause"),
    ("POST", re.compile(r"/dags/(?P<dag>[^/]+)/backfill"), "_backfill"),
    ("GET", re.compile(r"/runs"), "_runs"),
    ("GET", re.compile(r"/requests/(?P<request>\d+)"), "_request"),
    ("POST", re.compile(r"/runs/(?P<run>\d+)/cancel"), "_cancel"),
    ("POST", re.compile(r"/runs/(?P<run>\d+)/retry"), "_retry"),
    ("POST", re.compile(r"/runs/(?P<run>\d+)/tasks/(?P<task>[^/]+)/(?P<item>\d+)/mark"), "_mark"),
]
REQUESTER = "api"
"""Who asks, in a run's history, when an action comes through the API's token."""


class UiEndpoints:
    """Answers ``/api/v1/...`` requests from the store, the log store and the cluster."""

    def __init__(
        self,
        *,
        store: Store,
        log_store: LogStore,
        api: ApiClient,
        namespace: str,
        token: str | None,
        repo_url: str | None,
        wake: Callable[[list[int]], None],
        requests_pending: Callable[[], None] = lambda: None,
        protect_reads: bool = False,
    ) -> None:
        self._store = store
        self._logs = log_store
        self._api = api
        self._namespace = namespace
        self._token = token
        self._repo_url = repo_url
        self._wake = wake
        self._requests_pending = requests_pending
        self._protect_reads = protect_reads

    def handle(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> Reply | None:
        """The reply to a request under /api/v1/, or None for any other path."""
        path, _, raw_query = target.partition("?")
        if not path.startswith(PREFIX + "/"):
            return None
        route = path[len(PREFIX) :]
        allowed = []
        for verb, pattern, handler in ROUTES:
            match = pattern.fullmatch(route)
            if match is None:
                continue
            allowed.append(verb)
            if verb != method:
                continue
            args: dict[str, Any] = {k: unquote(v) for k, v in match.groupdict().items()}
            query = {key: values[-1] for key, values in parse_qs(raw_query).items()}
            try:
                if verb == "POST" or self._protect_reads:
                    self._authorize(headers)
                if verb == "POST":
                    args["body"] = _body(body)
                reply: Reply = getattr(self, handler)(query=query, **args)
            except _RefusedError as refused:
                return _json(refused.status, {"error": str(refused)})
            except (views.NotFoundError, NotFoundError) as missing:
                return _json(404, {"error": str(missing)})
            except ActionRefusedError as refused:
                return _json(409, {"error": str(refused)})
            except BadRequestError as bad:
                return _json(400, {"error": str(bad)})
            return reply
        if allowed:
            return Reply(405, b'{"error": "method not allowed"}', headers={"Allow": allowed[0]})
        return _json(404, {"error": f"no API route {path}"})

    def _authorize(self, headers: Mapping[str, str]) -> None:
        if self._token is None:
            raise _RefusedError(401, "actions are off: the controller has no api.tokenFile")
        scheme, _, given = headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise _RefusedError(401, "an action needs a token: send Authorization: Bearer TOKEN")
        if not hmac.compare_digest(given.strip().encode(), self._token.encode()):
            raise _RefusedError(401, "the token is not the controller's api token")

    # -- reads ---------------------------------------------------------------------

    def _dags(self, *, query: Mapping[str, str]) -> Reply:
        statuses = collect(self._store, include_deleted=False, now=datetime.now(UTC))
        with self._store.transaction() as uow:
            last = {status.name: uow.last_run(status.name) for status in statuses}
        return _json(200, {"dags": [self._dag_json(s, last[s.name]) for s in statuses]})

    def _dag_json(self, status: Any, last: DagRunRecord | None) -> dict[str, Any]:
        return {
            "name": status.name,
            "state": status.state,
            "path": status.path,
            "revision": status.revision,
            "runningRevision": status.running_revision,
            "schedule": status.schedule,
            "nextRun": status.next_run,
            "error": status.error,
            "paused": status.state == "paused",
            "pausedBy": status.paused_by,
            "lastRun": None
            if last is None
            else {"id": last.id, "state": str(last.state), "logicalDate": _iso(last.logical_date)},
        }

    def _dag(self, *, query: Mapping[str, str], dag: str) -> Reply:
        statuses = collect(self._store, include_deleted=True, now=datetime.now(UTC))
        status = next((s for s in statuses if s.name == dag), None)
        with self._store.transaction() as uow:
            record = uow.get_dag(dag)
            last = uow.last_run(dag)
        if status is None or record is None:
            raise views.NotFoundError(f"no DAG named {dag!r}")
        data = self._dag_json(status, last)
        spec = dag_from_dict(record.spec) if record.spec else None
        data["state"] = dag_state(record)
        data["description"] = spec.description if spec else None
        data["timezone"] = spec.timezone if spec else None
        data["params"] = {
            param.name: {
                key: value
                for key, value in {
                    "type": param.type,
                    "default": param.default,
                    "enum": None if param.enum is None else list(param.enum),
                    "description": param.description,
                }.items()
                if value is not None
            }
            for param in (spec.params if spec else ())
        }
        return _json(200, data)

    def _grid(self, *, query: Mapping[str, str], dag: str) -> Reply:
        limit = _int(query, "limit", DEFAULT_PAGE)
        before = _int(query, "before", None)
        with self._store.transaction() as uow:
            return _json(200, views.grid(uow, dag, limit=limit, before=before))

    def _run(self, *, query: Mapping[str, str], run: str) -> Reply:
        with self._store.transaction() as uow:
            record = uow.get_run(int(run))
        if record is None:
            raise views.NotFoundError(f"no run with id {run}")
        return _json(200, self._run_json(record))

    def _run_json(self, record: DagRunRecord) -> dict[str, Any]:
        return {
            "id": record.id,
            "dag": record.dag_name,
            "logicalDate": _iso(record.logical_date),
            "type": str(record.run_type),
            "state": str(record.state),
            "revision": record.revision,
            "commitUrl": commit_url(self._repo_url, record.revision),
            "params": record.params,
            "createdAt": _iso(record.created_at),
            "startedAt": _iso(record.started_at),
            "finishedAt": _iso(record.finished_at),
        }

    def _graph(self, *, query: Mapping[str, str], run: str) -> Reply:
        with self._store.transaction() as uow:
            return _json(200, views.graph(uow, int(run)))

    def _instances(self, *, query: Mapping[str, str], run: str) -> Reply:
        limit = _int(query, "limit", 100)
        offset = _int(query, "offset", 0)
        with self._store.transaction() as uow:
            page = views.instances(
                uow, int(run), task_name=query.get("task"), limit=limit, offset=offset
            )
        return _json(200, page)

    def _events(self, *, query: Mapping[str, str], run: str) -> Reply:
        with self._store.transaction() as uow:
            if uow.get_run(int(run)) is None:
                raise views.NotFoundError(f"no run with id {run}")
            events = uow.list_events(run_id=int(run), limit=_int(query, "limit", 500))
        return _json(
            200,
            {
                "events": [
                    {
                        "id": event.id,
                        "at": _iso(event.at),
                        "kind": event.kind,
                        "message": event.message,
                        "task": event.task_name,
                        "itemIndex": event.item_index,
                        "try": event.try_number,
                    }
                    for event in events
                ]
            },
        )

    def _tries(self, *, query: Mapping[str, str], run: str, task: str, item: str) -> Reply:
        rows = self._tries_of(int(run), task, int(item))
        return _json(200, {"tries": [_try_json(row) for row in rows]})

    def _tries_of(self, run: int, task: str, item: int) -> list[TaskInstanceRecord]:
        with self._store.transaction() as uow:
            if uow.get_run(run) is None:
                raise views.NotFoundError(f"no run with id {run}")
            return [
                row
                for row in uow.list_task_instances(run)
                if row.task_name == task and row.item_index == item
            ]

    def _log(self, *, query: Mapping[str, str], run: str, task: str, item: str) -> Reply:
        rows = self._tries_of(int(run), task, int(item))
        number = _int(query, "try", None)
        chosen = next(
            (row for row in rows if row.try_number == number),
            None if number is not None else (rows[-1] if rows else None),
        )
        if chosen is None:
            raise views.NotFoundError(f"no such try of {task}[{item}] in run {run}")
        key = LogKey(chosen.key, TASK_CONTAINER)
        text = "text/plain; charset=utf-8"
        if chosen.state.finished:
            stored = self._logs.read(key)
            if stored is not None:
                return Reply(200, stored.encode(), content_type=text)
        if not chosen.pod_name:
            raise _RefusedError(404, f"try {chosen.try_number} has no pod yet and no stored log")
        namespace = chosen.namespace or self._namespace
        if query.get("follow") and not chosen.state.finished:
            return Reply(200, self._follow(chosen, namespace=namespace, key=key), text)
        (entry,) = read_pod_logs(
            self._api, namespace=namespace, pod=chosen.pod_name, containers=[TASK_CONTAINER]
        )
        if entry.error and not entry.text:
            # The cleaner stores a try's log before its pod may go, so a pod gone since the
            # row was read has left its log in the store.
            stored = self._logs.read(key)
            if stored is not None:
                return Reply(200, stored.encode(), content_type=text)
            raise _RefusedError(404, f"pod {chosen.pod_name}: {entry.error}")
        return Reply(200, entry.text.encode(), content_type=text)

    def _follow(self, row: TaskInstanceRecord, *, namespace: str, key: LogKey) -> Iterator[bytes]:
        follow = LogFollow(
            self._api, namespace=namespace, pod=str(row.pod_name), container=TASK_CONTAINER
        )
        sent = 0
        try:
            for line in follow:
                yield (line + "\n").encode()
                sent += 1
        except PodGoneError:
            stored = self._logs.read(key)
            if stored is not None:
                rest = "\n".join(stored.split("\n")[sent:])
                if rest:
                    yield rest.encode()
        finally:
            follow.stop()

    # -- actions -------------------------------------------------------------------

    def _trigger(self, *, query: Mapping[str, str], dag: str, body: dict[str, Any]) -> Reply:
        given = body.get("params") or {}
        if not isinstance(given, dict):
            raise _RefusedError(400, "params must be an object")
        params = {
            name: value if isinstance(value, str) else json.dumps(value)
            for name, value in given.items()
        }
        try:
            run = trigger_run(self._store, dag_name=dag, params=params)
        except ParamError as error:
            raise _RefusedError(400, "; ".join(error.problems)) from error
        except TriggerError as error:
            raise _RefusedError(404 if "unknown DAG" in str(error) else 409, str(error)) from error
        self._wake([run.id])
        return _json(201, {"id": run.id, "dag": run.dag_name, "state": str(run.state)})

    def _pause(
        self, *, query: Mapping[str, str], dag: str, verb: str, body: dict[str, Any]
    ) -> Reply:
        record = set_paused(self._store, dag, paused=verb == "pause", by=REQUESTER)
        return _json(200, {"dag": dag, "paused": record.paused, "pausedBy": record.paused_by})

    def _cancel(self, *, query: Mapping[str, str], run: str, body: dict[str, Any]) -> Reply:
        return self._queued(run_actions.cancel(self._store, int(run), body, by=REQUESTER))

    def _retry(self, *, query: Mapping[str, str], run: str, body: dict[str, Any]) -> Reply:
        return self._queued(run_actions.retry(self._store, int(run), body, by=REQUESTER))

    def _mark(
        self, *, query: Mapping[str, str], run: str, task: str, item: str, body: dict[str, Any]
    ) -> Reply:
        return self._queued(
            run_actions.mark(self._store, int(run), task, int(item), body, by=REQUESTER)
        )

    def _backfill(self, *, query: Mapping[str, str], dag: str, body: dict[str, Any]) -> Reply:
        status, answer = run_actions.backfill(self._store, dag, body, by=REQUESTER)
        if status == 201:
            self._wake([run["id"] for run in answer["runs"] if run["created"]])
        return _json(status, answer)

    def _queued(self, answer: tuple[int, Any]) -> Reply:
        self._requests_pending()
        return _json(*answer)

    def _request(self, *, query: Mapping[str, str], request: str) -> Reply:
        with self._store.transaction() as uow:
            record = uow.get_request(int(request))
        if record is None:
            raise views.NotFoundError(f"no request with id {request}")
        return _json(200, run_actions.request_json(record))

    def _runs(self, *, query: Mapping[str, str]) -> Reply:
        state = query.get("state")
        if state is not None and state not in {known.value for known in DagRunState}:
            known = ", ".join(s.value for s in DagRunState)
            raise _RefusedError(400, f"state must be one of {known}, not {state!r}")
        limit = min(_int(query, "limit", DEFAULT_PAGE), views.MAX_PAGE)
        with self._store.transaction() as uow:
            records = uow.list_runs(
                dag_name=query.get("dag"),
                states=None if state is None else [DagRunState(state)],
                limit=limit,
            )
        return _json(200, {"runs": [self._run_json(record) for record in records]})


def _body(raw: bytes) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError as error:
        raise _RefusedError(400, f"the body is not JSON: {error}") from error
    if not isinstance(data, dict):
        raise _RefusedError(400, "the body must be a JSON object")
    return data


def _int(query: Mapping[str, str], name: str, default: int | None) -> Any:
    value = query.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as error:
        raise _RefusedError(400, f"{name} must be an integer, not {value!r}") from error


def _try_json(row: TaskInstanceRecord) -> dict[str, Any]:
    data = views.instance_summary(row)
    data.update({"pod": row.pod_name, "node": row.node, "exitCode": row.exit_code})
    return data
