"""Notifications from the event log to a local receiver, on both databases."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from controller.base.backoff import Backoff
from controller.engine.seam import LaunchOrder
from controller.metrics import Metrics
from controller.notifications.delivery import DeliveryError, deliver
from controller.notifications.follower import NotificationFollower
from controller.notifications.settings import NotificationSettings, Route
from controller.operations.requests import request_cancel
from controller.settings.loading import load_config
from controller.settings.model import ConfigError
from controller.spec.model import RetryBackoff
from controller.store import Store
from tests.engine.support import dag, task
from tests.notifications.receiver import receiving
from tests.runtime.inprocess import Outcome
from tests.runtime.support import Recorder, engine_on, queue_run, store_dag

PIPELINE = dag(
    task("extract", retries=1, backoff=RetryBackoff(delay_seconds=0)),
    task("load", "extract"),
    name="sales",
)
FAST = Backoff(base=0.05, cap=0.2, max_attempts=4, max_elapsed=10.0)


def extract_fails(order: LaunchOrder) -> Outcome:
    if order.task.name == "extract":
        return Outcome.failed(message="source down")
    return Outcome.succeeded()


@contextmanager
def following(
    store: Store, settings: NotificationSettings, **options: object
) -> Iterator[NotificationFollower]:
    follower = NotificationFollower(store, settings, poll_seconds=0.05, **options)  # type: ignore[arg-type]
    follower.start()
    try:
        yield follower
    finally:
        follower.stop()


def test_a_failed_run_is_notified_after_the_receiver_answered_500(
    store: Store, tmp_path: Path
) -> None:
    store_dag(store, PIPELINE)
    metrics = Metrics()
    with receiving(tmp_path, statuses=[500]) as (receiver, url_file):
        settings = NotificationSettings(
            receivers={"ops": url_file},
            default=Route(receivers=("ops",), events=("runFailed", "taskRetriesExhausted")),
        )
        with following(store, settings, metrics=metrics):
            run = queue_run(store, PIPELINE)
            with engine_on(store, Recorder(extract_fails)) as engine:
                engine.wake([run.id])
                engine.run_until_idle(timeout=10)
            bodies = receiver.wait_for(2)
    assert receiver.answered[0] == 500
    by_event = {body["event"]: body for body in bodies}
    failed = by_event["runFailed"]
    assert failed["version"] == 1
    assert failed["dag"] == "sales"
    assert (failed["run"]["id"], failed["run"]["state"]) == (run.id, "failed")
    assert failed["text"].startswith(
        f"kubedag: run {run.id} of sales (2026-03-01 03:00 UTC) failed"
    )
    exhausted = by_event["taskRetriesExhausted"]
    assert exhausted["task"] == {"name": "extract", "itemIndex": 0}
    assert metrics.run_outcomes.labels(dag="sales", state="failed")._value.get() == 1
    assert metrics.try_outcomes.labels(dag="sales", state="failed")._value.get() == 0


def test_only_the_events_a_dags_route_asks_for_are_sent(store: Store, tmp_path: Path) -> None:
    store_dag(store, PIPELINE)
    with receiving(tmp_path) as (receiver, url_file):
        settings = NotificationSettings(
            receivers={"ops": url_file},
            default=Route(receivers=("ops",), events=("runSucceeded",)),
            dags={"sales": Route(receivers=("ops",), events=("runCancelled",))},
        )
        with following(store, settings):
            run = queue_run(store, PIPELINE)
            request_cancel(store, run.id, by="test:alice")
            with engine_on(store, Recorder()) as engine:
                engine.run_until_idle(timeout=10)
            (body,) = receiver.wait_for(1)
    assert body["event"] == "runCancelled"
    assert "cancelled by test:alice" in body["message"]


def test_a_run_past_its_sla_is_notified_once(store: Store, tmp_path: Path) -> None:
    store_dag(store, PIPELINE)
    run = queue_run(store, PIPELINE)
    late = datetime.now(UTC) + timedelta(hours=3)
    with receiving(tmp_path) as (receiver, url_file):
        settings = NotificationSettings(
            receivers={"ops": url_file},
            default=Route(receivers=("ops",), events=("slaMissed",), sla_seconds=7200),
        )
        with following(store, settings, clock=lambda: late) as follower:
            (body,) = receiver.wait_for(1)
            follower.poll()
            follower.poll()
    assert body["event"] == "slaMissed"
    assert body["run"]["id"] == run.id
    with store.transaction() as uow:
        assert len(uow.list_events(run_id=run.id, kind="run-sla-missed")) == 1


def test_a_refused_notification_is_not_retried_and_a_500_only_so_often(tmp_path: Path) -> None:
    with receiving(tmp_path, statuses=[404]) as (receiver, url_file):
        with pytest.raises(DeliveryError, match="answered 404; not retried"):
            deliver(url_file, {"text": "x"}, timeout=5, backoff=FAST, sleep=lambda _: None)
        assert receiver.answered == [404]
    with receiving(tmp_path, statuses=[500] * 10) as (receiver, url_file):
        with pytest.raises(DeliveryError, match="answered 500; gave up after 4 attempts"):
            deliver(url_file, {"text": "x"}, timeout=5, backoff=FAST, sleep=lambda _: None)
        assert receiver.answered == [500] * 4
    missing = tmp_path / "nowhere"
    with pytest.raises(DeliveryError, match="cannot read the webhook URL file"):
        deliver(str(missing), {"text": "x"}, timeout=5)


def test_routes_naming_an_unknown_receiver_are_refused_at_startup(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "notifications:\n"
        "  receivers: [{name: ops, urlFile: /etc/kubedag/ops}]\n"
        "  default: {receivers: [ops], sla: 2h}\n"
        "  dags: {sales: {receivers: [team], events: [runFailed]}}\n"
    )
    with pytest.raises(
        ConfigError, match=r"notifications.dags.sales.receivers: no receiver named 'team'"
    ):
        load_config(path=str(config), overrides={})
    config.write_text(
        "notifications:\n"
        "  receivers: [{name: ops, urlFile: /etc/kubedag/ops}]\n"
        "  default: {receivers: [ops], sla: 2h}\n"
    )
    settings = load_config(path=str(config), overrides={}).notifications
    assert settings.route("any") == Route(
        receivers=("ops",),
        events=("runFailed", "taskRetriesExhausted", "slaMissed"),
        sla_seconds=7200,
    )
