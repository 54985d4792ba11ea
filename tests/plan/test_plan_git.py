"""`kubedag plan` over real git repositories: each kind of change, as a reviewer sees it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from controller.base.states import DagRunState, RunType
from controller.cli import main
from controller.store import Store
from tests.plan.repo import DagRepo, dag_text

NOW = "2026-03-28T12:00:00Z"
"""The Saturday before Europe's spring-forward night (2026-03-29, 02:00 -> 03:00)."""


@pytest.fixture
def repo(tmp_path: Path) -> DagRepo:
    repo = DagRepo(tmp_path / "dags")
    repo.write("dags/orders.yaml", dag_text("orders"))
    repo.write("dags/reports.yaml", dag_text("reports", schedule='"@hourly"'))
    repo.commit("base")
    return repo


def plan(
    repo: DagRepo, capsys: pytest.CaptureFixture[str], *args: str, output: str = "json"
) -> tuple[int, Any]:
    code = main(["plan", "--repo", str(repo.root), "--now", NOW, "--output", output, *args])
    out = capsys.readouterr().out
    return code, json.loads(out) if output == "json" else out


def dag(result: Any, name: str) -> Any:
    found = [entry for entry in result["dags"] if entry["name"] == name]
    assert len(found) == 1, result["dags"]
    return found[0]


def test_no_change_exits_0(repo: DagRepo, capsys: pytest.CaptureFixture[str]) -> None:
    code, result = plan(repo, capsys)
    assert code == 0
    assert result["dags"] == []
    code, text = plan(repo, capsys, "main", "HEAD", output="text")
    assert code == 0
    assert "No changes." in text


def test_an_added_dag_shows_its_tasks_and_first_fires(
    repo: DagRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.write("dags/billing.yaml", dag_text("billing", schedule='"0 6 * * *"'))
    code, result = plan(repo, capsys)
    assert code == 2
    added = dag(result, "billing")
    assert added["kind"] == "added"
    assert added["path"] == "dags/billing.yaml"
    assert [t["name"] for t in added["tasks"]] == ["extract", "load"]
    assert added["schedule"]["firesAfter"][0] == "2026-03-29T06:00:00+00:00"
    # No startDate and no history: only the latest due time runs (today's 06:00).
    assert added["catchup"]["logicalDates"] == ["2026-03-28T06:00:00+00:00"]


def test_a_removed_dag(repo: DagRepo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.remove("dags/reports.yaml")
    repo.commit("drop reports")
    code, result = plan(repo, capsys, "HEAD~1", "HEAD")
    assert code == 2
    removed = dag(result, "reports")
    assert removed["kind"] == "removed"
    assert removed["oldPath"] == "dags/reports.yaml"
    assert removed["path"] is None


def test_a_moved_file_is_a_rename_not_a_removal_and_an_addition(
    repo: DagRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.move("dags/orders.yaml", "dags/sales/orders.yaml")
    repo.commit("move orders")
    code, result = plan(repo, capsys, "HEAD~1", "HEAD")
    assert code == 2
    assert [entry["kind"] for entry in result["dags"]] == ["renamed"]
    renamed = dag(result, "orders")
    assert (renamed["oldPath"], renamed["path"]) == ("dags/orders.yaml", "dags/sales/orders.yaml")
    # The task's working directory is the DAG file's folder: the pods show the move.
    assert {t["name"] for t in renamed["tasks"]} == {"extract", "load"}
    for task in renamed["tasks"]:
        assert task["podFields"] == ["spec.containers[0].workingDir"]
        assert "+    workingDir: /workspace/repo/dags/sales" in task["podDiff"]


def test_a_schedule_change_lists_fires_across_the_dst_boundary(
    repo: DagRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.write(
        "dags/orders.yaml",
        dag_text("orders", schedule='"30 2 * * *"', extra_spec="  timezone: Europe/Berlin"),
    )
    repo.commit("orders at 02:30 Berlin")
    code, result = plan(repo, capsys, "HEAD~1", "HEAD")
    assert code == 2
    change = dag(result, "orders")["schedule"]
    assert change["before"] == "0 3 * * * (UTC)"
    assert change["after"] == "30 2 * * * (Europe/Berlin)"
    assert change["firesBefore"][:2] == ["2026-03-29T03:00:00+00:00", "2026-03-30T03:00:00+00:00"]
    # 02:30 does not exist on 2026-03-29 in Berlin: that day it fires at 03:30 CEST,
    # then at 02:30 CEST; five times in the DAG's zone.
    assert change["firesAfter"] == [
        "2026-03-29T03:30:00+02:00",
        "2026-03-30T02:30:00+02:00",
        "2026-03-31T02:30:00+02:00",
        "2026-04-01T02:30:00+02:00",
        "2026-04-02T02:30:00+02:00",
    ]


def test_pausing_shows_the_pause_and_creates_no_runs(
    repo: DagRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.write(
        "dags/reports.yaml", dag_text("reports", schedule='"@hourly"', extra_spec="  paused: true")
    )
    code, result = plan(repo, capsys)
    assert code == 2
    reports = dag(result, "reports")
    assert reports["paused"] == {"before": False, "after": True}
    assert reports["catchup"] is None
    assert reports["schedule"] is None


def test_a_moved_start_date_with_catchup_creates_the_missed_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = DagRepo(tmp_path / "dags")
    repo.write("daily.yaml", dag_text("daily", extra_spec='  startDate: "2026-06-01"'))
    repo.commit("starts in June")
    repo.write(
        "daily.yaml",
        dag_text("daily", extra_spec='  startDate: "2026-03-20"\n  catchup: true'),
    )
    repo.commit("starts in March, with catchup")
    code, result = plan(repo, capsys, "HEAD~1", "HEAD")
    assert code == 2
    daily = dag(result, "daily")
    assert daily["catchup"]["count"] == 9  # 03:00 of 2026-03-20 .. 2026-03-28
    assert daily["catchup"]["logicalDates"][0] == "2026-03-20T03:00:00+00:00"
    assert daily["catchup"]["logicalDates"][-1] == "2026-03-28T03:00:00+00:00"
    assert daily["fields"] == [{"field": "catchup", "before": False, "after": True}]
    _, text = plan(repo, capsys, "HEAD~1", "HEAD", output="text")
    assert "runs created at merge: 9" in text


def test_task_graph_changes(repo: DagRepo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.write(
        "dags/orders.yaml",
        dag_text(
            "orders",
            tasks="""\
    - name: extract
      command: [python3, extract.py]
    - name: clean
      command: [python3, clean.py]
    - name: load
      dependsOn: [extract, clean]
      triggerRule: allDone
      command: [python3, load.py]""",
        ),
    )
    code, result = plan(repo, capsys)
    assert code == 2
    tasks = {t["name"]: t for t in dag(result, "orders")["tasks"]}
    assert tasks["clean"]["kind"] == "added"
    load = tasks["load"]
    assert load["kind"] == "changed"
    assert {s["field"]: (s["before"], s["after"]) for s in load["settings"]} == {
        "dependsOn": (["extract"], ["clean", "extract"]),
        "triggerRule": ("allSuccess", "allDone"),
    }
    assert load["podFields"] == []
    assert "extract" not in tasks


def test_a_change_in_defaults_shows_in_every_task_pod(
    repo: DagRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.write(
        "dags/orders.yaml",
        dag_text(
            "orders",
            defaults="""\
    image: python:3.12-slim
    resources: {limits: {memory: 1Gi}}""",
        ),
    )
    code, result = plan(repo, capsys)
    assert code == 2
    tasks = dag(result, "orders")["tasks"]
    assert [t["name"] for t in tasks] == ["extract", "load"]
    for task in tasks:
        assert task["podFields"] == ["spec.containers[0].resources"]
        assert "+      limits:" in task["podDiff"]
        assert "+        memory: 1Gi" in task["podDiff"]


def test_a_pod_template_change_in_the_repository_shows_in_the_pods(
    repo: DagRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.write("deploy/pod-template.yaml", "spec:\n  priorityClassName: batch\n")
    repo.commit("template")
    repo.write("deploy/pod-template.yaml", "spec:\n  priorityClassName: urgent\n")
    code, result = plan(repo, capsys, "--pod-template", "deploy/pod-template.yaml")
    assert code == 2
    assert {d["name"] for d in result["dags"]} == {"orders", "reports"}
    for entry in result["dags"]:
        for task in entry["tasks"]:
            assert task["podFields"] == ["spec.priorityClassName"]


def test_an_invalid_head_exits_1_with_every_problem_at_its_place(
    repo: DagRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    text = dag_text("orders").replace("dependsOn: [extract]", "dependsOn: [extrct]")
    repo.write("dags/orders.yaml", text)
    repo.write(
        "dags/broken.yaml", "apiVersion: kubedag.io/v1\nkind: DAG\nmetadata: {name: broken}\n"
    )
    repo.commit("typo")
    code, result = plan(repo, capsys, "HEAD~1", "HEAD")
    assert code == 1
    orders = dag(result, "orders")
    assert orders["kind"] == "invalid-now"
    assert orders["oldPath"] == "dags/orders.yaml"
    (problem,) = orders["problems"]
    line = text.splitlines().index("      dependsOn: [extrct]") + 1
    assert (problem["path"], problem["line"], problem["col"]) == ("dags/orders.yaml", line, 19)
    assert dag(result, "broken")["kind"] == "invalid-now"
    code, out = plan(repo, capsys, "HEAD~1", "HEAD", output="text")
    assert code == 1
    assert f"dags/orders.yaml:{line}:19: dependsOn names 'extrct'" in out
    assert "keeps running the last valid version" in out
    assert "HEAD is invalid" in out


def test_default_base_is_the_merge_base_with_main(
    repo: DagRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.git("checkout", "-q", "-b", "feature")
    repo.write("dags/billing.yaml", dag_text("billing"))
    repo.commit("billing")
    repo.git("checkout", "-q", "main")
    repo.write("dags/audit.yaml", dag_text("audit"))
    repo.commit("audit on main")
    repo.git("checkout", "-q", "feature")
    code, result = plan(repo, capsys)
    assert code == 2
    # Only the branch's own change: audit, added on main since, is not in the plan.
    assert [(d["name"], d["kind"]) for d in result["dags"]] == [("billing", "added")]


def test_markdown_for_a_pull_request_comment(
    repo: DagRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.write(
        "dags/orders.yaml",
        dag_text("orders", defaults="    image: python:3.13-slim"),
    )
    code, out = plan(repo, capsys, output="markdown")
    assert code == 2
    assert "#### changed: `orders` (`dags/orders.yaml`)" in out
    assert "```diff" in out
    assert "-    image: python:3.12-slim\n+    image: python:3.13-slim" in out
    assert "- task `extract`: changed\n  - pod: spec.containers[0].image" in out


def test_an_unknown_revision_is_an_error(repo: DagRepo, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["plan", "--repo", str(repo.root), "no-such-branch", "HEAD"])
    assert code == 1
    assert "'no-such-branch' is not a commit" in capsys.readouterr().err


def test_with_the_database_open_runs_keep_their_commit_and_catchup_counts_from_the_last_run(
    repo: DagRepo, capsys: pytest.CaptureFixture[str], store: Store, database_url: str
) -> None:
    base = repo.git("rev-parse", "HEAD")
    spec = {"name": "orders", "tasks": []}
    with store.transaction() as uow:
        uow.upsert_dag(
            name="orders", path="dags/orders.yaml", revision=base, spec_hash="h", spec=spec
        )
        # The controller was down: the last scheduled run is three days old.
        last, _ = uow.create_run(
            dag_name="orders",
            logical_date=datetime(2026, 3, 25, 3, tzinfo=UTC),
            run_type=RunType.SCHEDULED,
            revision=base,
            spec=spec,
            state=DagRunState.RUNNING,
        )
    repo.write("dags/orders.yaml", dag_text("orders", extra_spec="  catchup: true"))
    code, result = plan(repo, capsys, "--database-url", database_url)
    assert code == 2
    orders = dag(result, "orders")
    assert orders["openRuns"] == [
        {
            "id": last.id,
            "revision": base,
            "state": "running",
            "logicalDate": "2026-03-25T03:00:00+00:00",
        }
    ]
    assert orders["catchup"]["logicalDates"] == [
        "2026-03-26T03:00:00+00:00",
        "2026-03-27T03:00:00+00:00",
        "2026-03-28T03:00:00+00:00",
    ]
    assert orders["catchup"]["assumedLastRun"] is False
    _, text = plan(repo, capsys, "--database-url", database_url, output="text")
    assert f"open runs keeping their commit: #{last.id} (running, {base[:12]})" in text


def test_a_removed_task(repo: DagRepo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.write(
        "dags/orders.yaml",
        dag_text("orders", tasks="    - name: extract\n      command: [python3, extract.py]"),
    )
    code, result = plan(repo, capsys)
    assert code == 2
    assert dag(result, "orders")["tasks"] == [
        {"name": "load", "kind": "removed", "settings": [], "podFields": [], "podDiff": ""}
    ]


def test_unpausing_with_catchup_without_the_database_says_the_count_is_unknown(
    repo: DagRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.write(
        "dags/reports.yaml", dag_text("reports", schedule='"@hourly"', extra_spec="  paused: true")
    )
    repo.commit("pause reports")
    repo.write(
        "dags/reports.yaml", dag_text("reports", schedule='"@hourly"', extra_spec="  catchup: true")
    )
    code, result = plan(repo, capsys, "HEAD", output="json")
    assert code == 2
    reports = dag(result, "reports")
    assert reports["paused"] == {"before": True, "after": False}
    assert reports["catchup"]["known"] is False
    _, text = plan(repo, capsys, "HEAD", output="text")
    assert "runs created at merge: unknown" in text


def test_only_the_dag_folder_is_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = DagRepo(tmp_path / "repo")
    repo.write("dags/orders.yaml", dag_text("orders"))
    repo.write("other/broken.yaml", "apiVersion: kubedag.io/v1\nkind: DAG\n")
    repo.commit("base")
    repo.write("dags/billing.yaml", dag_text("billing"))
    code, result = plan(repo, capsys, "--path", "dags")
    assert code == 2
    assert [(d["name"], d["kind"], d["path"]) for d in result["dags"]] == [
        ("billing", "added", "dags/billing.yaml")
    ]
    code, result = plan(repo, capsys)  # the whole repository: the broken file counts
    assert code == 1


def test_an_unreadable_database_is_an_error_naming_it_without_its_password(
    repo: DagRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "postgresql+psycopg2://kubedag:s3cret@127.0.0.1:1/none?connect_timeout=2"
    code = main(["plan", "--repo", str(repo.root), "--database-url", url])
    assert code == 1
    err = capsys.readouterr().err
    assert "cannot read" in err
    assert "s3cret" not in err
