"""Validating a repository: discovery, reporting, resolution and isolation of bad files."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from controller.spec.model import TriggerRule, dag_from_dict, dag_to_dict
from controller.spec.validate import check_file, declares_dag, validate_paths
from tests.spec.support import HEADER, validate_dir, write

GOOD = HEADER + "  tasks:\n    - {name: a, image: x}\n"


def named(name: str, spec: str = "  tasks:\n    - {name: a, image: x}\n") -> str:
    return HEADER.replace("name: demo", f"name: {name}") + spec


def test_directories_are_searched_recursively_for_yaml_and_yml(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", named("one"))
    write(tmp_path, "deep/er/b.yml", named("two"))
    write(tmp_path, "notes.txt", named("three"))
    report = validate_dir(tmp_path)
    assert sorted(loaded.path for loaded in report.dags) == ["a.yaml", "deep/er/b.yml"]
    assert report.files_checked == 2


def test_yaml_that_does_not_declare_kind_dag_is_ignored(tmp_path: Path) -> None:
    write(tmp_path, "deployment.yaml", "apiVersion: apps/v1\nkind: Deployment\nspec: [\n")
    write(tmp_path, ".pre-commit-config.yaml", "repos: []\n")
    report = validate_dir(tmp_path)
    assert report.ok
    assert report.files_checked == 0


def test_hidden_directories_are_skipped(tmp_path: Path) -> None:
    write(tmp_path, ".git/x.yaml", "kind: DAG\n: broken\n")
    assert validate_dir(tmp_path).files_checked == 0


def test_a_file_whose_kind_is_misspelt_is_still_checked() -> None:
    assert declares_dag(b"apiVersion: kubedag.io/v1\nkind: Dag\n")
    assert declares_dag(b"kind: DAG  # comment\r\n")
    assert not declares_dag(b"kind: Deployment\n")


def test_problems_are_sorted_and_paths_relative_to_the_root(tmp_path: Path) -> None:
    write(tmp_path, "b.yaml", named("b", "  tasks: []\n"))
    write(tmp_path, "a.yaml", named("a", "  timezone: Moon/Base\n  tasks: []\n"))
    report = validate_dir(tmp_path)
    assert [(p.path, p.line) for p in report.problems] == [
        ("a.yaml", 6),
        ("a.yaml", 7),
        ("b.yaml", 6),
    ]


def test_one_bad_file_does_not_block_the_others(tmp_path: Path) -> None:
    write(tmp_path, "good.yaml", named("good"))
    write(tmp_path, "bad.yaml", named("bad", "  tasks: [{name: a}]\n"))
    report = validate_dir(tmp_path)
    assert [loaded.dag.name for loaded in report.dags] == ["good"]
    assert not report.ok
    assert report.names_by_path == {"bad.yaml": "bad", "good.yaml": "good"}


def test_a_file_reached_twice_is_checked_once(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", GOOD)
    report = validate_paths(["a.yaml", "."], root=tmp_path)
    assert report.ok, report.problems
    assert report.files_checked == 1


def test_a_link_to_a_dag_file_in_the_tree_is_not_a_second_dag(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", GOOD)
    (tmp_path / "team").mkdir()
    (tmp_path / "team" / "link.yaml").symlink_to(tmp_path / "a.yaml")
    report = validate_dir(tmp_path)
    assert report.ok, report.problems
    assert [loaded.path for loaded in report.dags] == ["a.yaml"]


def test_a_missing_path_is_a_problem(tmp_path: Path) -> None:
    report = validate_paths([tmp_path / "nope.yaml"])
    assert [p.message for p in report.problems] == ["no such file"]


def test_relative_paths_are_taken_from_the_root(tmp_path: Path) -> None:
    write(tmp_path, "dags/a.yaml", GOOD)
    report = validate_paths(["dags"], root=tmp_path)
    assert [loaded.path for loaded in report.dags] == ["dags/a.yaml"]


def test_defaults_merge_into_tasks_by_the_documented_rules(tmp_path: Path) -> None:
    spec = """\
  defaults:
    image: base:1
    command: [run]
    env: [{name: A, value: "1"}, {name: B, value: "2"}]
    envFrom: [{secretRef: {name: shared}}]
    resources: {requests: {cpu: 100m, memory: 64Mi}}
    retries: {limit: 2, backoff: {delay: 30s}}
    timeout: 1h30m
    podOverrides:
      nodeSelector: {pool: batch}
      tolerations: [{key: spot, operator: Exists}]
      volumes: [{name: cache, emptyDir: {}}]
  tasks:
    - name: a
      image: own:2
      env: [{name: B, value: "two"}, {name: C, value: "3"}]
      envFrom: [{configMapRef: {name: mine}}]
      resources: {requests: {memory: 1Gi}}
      retries: {backoff: {factor: 3}}
      triggerRule: allDone
      podOverrides:
        nodeSelector: {zone: a}
        tolerations: [{key: gpu, operator: Exists}]
        volumes: [{name: cache, persistentVolumeClaim: {claimName: c}}]
"""
    write(tmp_path, "d.yaml", named("merged", spec))
    report = validate_dir(tmp_path)
    assert report.ok, report.problems
    task = report.dags[0].dag.tasks[0]
    assert task.image == "own:2"
    assert task.command == ("run",)
    assert [dict(e) for e in task.env] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "two"},
        {"name": "C", "value": "3"},
    ]
    assert [next(iter(e)) for e in task.env_from] == ["secretRef", "configMapRef"]
    assert task.resources == {"requests": {"cpu": "100m", "memory": "1Gi"}}
    assert (task.retries.limit, task.retries.backoff.delay_seconds) == (2, 30.0)
    assert task.retries.backoff.factor == 3.0
    assert task.timeout_seconds == 5400
    assert task.trigger_rule is TriggerRule.ALL_DONE
    assert task.pod_overrides["nodeSelector"] == {"pool": "batch", "zone": "a"}
    assert [t["key"] for t in task.pod_overrides["tolerations"]] == ["spot", "gpu"]
    assert task.pod_overrides["volumes"] == [
        {"name": "cache", "persistentVolumeClaim": {"claimName": "c"}}
    ]


def test_dates_without_offset_are_read_in_the_dag_timezone(tmp_path: Path) -> None:
    spec = "  timezone: Asia/Tokyo\n  startDate: 2026-01-01\n  tasks:\n    - {name: a, image: x}\n"
    write(tmp_path, "d.yaml", named("tokyo", spec))
    start = validate_dir(tmp_path).dags[0].dag.start_date
    assert start is not None
    assert start.isoformat() == "2026-01-01T00:00:00+09:00"


def test_the_resolved_dag_survives_the_snapshot_round_trip(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2] / "sample-dags"
    for loaded in validate_paths([root]).dags:
        assert dag_from_dict(dag_to_dict(loaded.dag)) == loaded.dag


def test_a_task_without_checkout_survives_the_snapshot_and_its_default_changes_no_hash(
    tmp_path: Path,
) -> None:
    write(tmp_path, "a/d.yaml", named("h"))
    write(
        tmp_path,
        "b/d.yaml",
        named("h").replace("{name: a, image: x}", "{name: a, image: x, checkout: true}"),
    )
    write(
        tmp_path,
        "c/d.yaml",
        named("h").replace("{name: a, image: x}", "{name: a, image: x, checkout: false}"),
    )
    loaded = [validate_dir(tmp_path / part).dags[0] for part in "abc"]
    assert [one.dag.tasks[0].checkout for one in loaded] == [True, True, False]
    assert loaded[0].content_hash == loaded[1].content_hash != loaded[2].content_hash
    assert dag_from_dict(dag_to_dict(loaded[2].dag)) == loaded[2].dag


def test_content_hash_ignores_layout_but_not_meaning(tmp_path: Path) -> None:
    write(tmp_path, "a/d.yaml", named("h"))
    write(
        tmp_path,
        "b/d.yaml",
        "# reformatted\n" + named("h").replace("{name: a, image: x}", "{image: x, name: a}"),
    )
    write(tmp_path, "c/d.yaml", named("h").replace("image: x", "image: y"))
    hashes = [validate_dir(tmp_path / part).dags[0].content_hash for part in "abc"]
    assert hashes[0] == hashes[1]
    assert hashes[0] != hashes[2]
    assert len(hashes[0]) == 64


def test_only_a_top_level_kind_declares_a_dag() -> None:
    assert not declares_dag(b"kind: Workflow\nspec:\n  templates:\n    - kind: DAG\n")
    assert not declares_dag(b"# kind: DAG\n")
    assert declares_dag(b'{"apiVersion": "x", "kind": "DAG"}')


PINNED = """\
apiVersion: kubedag.io/v1
kind: DAG
metadata:
  name: pinned
  labels: {team: data}
  description: Café rollup
spec:
  schedule: "0 3 * * *"
  timezone: Europe/Berlin
  startDate: "2026-01-01"
  params:
    region: {type: string, default: eu, enum: [eu, us]}
  defaults:
    image: python:3.12-slim
    retries: {limit: 2, backoff: {delay: 30s, factor: 1.5}}
    resources: {requests: {cpu: 100m}, limits: {memory: 512Mi}}
    env: [{name: STAGE, value: prod}]
  tasks:
    - name: extract
      command: [python3, extract.py, "{{ params.region }}"]
      timeout: 1h
    - name: load
      dependsOn: [extract]
      withItems: [a, {b: 1}]
      args: ["{{ tasks.extract.result }}"]
      podOverrides: {nodeSelector: {pool: etl}}
"""


def test_content_hash_of_a_dag_stays_what_stored_dags_were_hashed_with() -> None:
    # The controller compares this hash with the one stored for each DAG: a change in
    # how it is computed would report every DAG as updated.
    loaded = check_file(PINNED.encode("utf-8"), path="pinned.yaml").loaded
    assert loaded is not None
    assert loaded.content_hash == (
        "6fee489c8a95a68df36fde3c027d130062a4ada34072c95141420244a85705bd"
    )


@pytest.mark.parametrize("enabled", [True, False])
def test_validation_leaves_the_garbage_collector_as_it_found_it(
    tmp_path: Path, enabled: bool
) -> None:
    write(tmp_path, "a.yaml", GOOD)
    was_enabled = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        assert validate_dir(tmp_path).ok
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was_enabled else gc.disable)()
