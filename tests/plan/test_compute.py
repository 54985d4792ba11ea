"""Properties of the pure plan over the sample DAGs: no I/O beyond reading them once."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.executor.podspec import PodConfig
from controller.plan.compute import ChangeKind, DagSet, compute_plan
from controller.spec.validate import ValidationReport, validate_paths

SAMPLES = Path(__file__).resolve().parents[2] / "sample-dags"
REPORT = validate_paths([SAMPLES], root=SAMPLES.parent)
NAMES = sorted(loaded.dag.name for loaded in REPORT.dags)
CONFIG = PodConfig(repo_url="https://git.example/dags.git")
NOW = datetime(2026, 10, 24, 12, tzinfo=UTC)

subsets = st.sets(st.sampled_from(NAMES))


def side(names: set[str]) -> DagSet:
    kept = tuple(loaded for loaded in REPORT.dags if loaded.dag.name in names)
    report = ValidationReport(dags=kept, problems=(), files_checked=len(kept), names_by_path={})
    return DagSet.of(report, pod_config=CONFIG)


def kinds(base: set[str], head: set[str]) -> dict[str, ChangeKind]:
    plan = compute_plan(side(base), side(head), now=NOW)
    return {dag.name: dag.kind for dag in plan.dags}


@settings(max_examples=30, deadline=None)
@given(subsets)
def test_a_set_planned_against_itself_changes_nothing(names: set[str]) -> None:
    plan = compute_plan(side(names), side(names), now=NOW)
    assert plan.dags == ()
    assert plan.exit_code == 0


@settings(max_examples=30, deadline=None)
@given(subsets, subsets)
def test_what_one_direction_adds_the_other_removes(base: set[str], head: set[str]) -> None:
    forward, backward = kinds(base, head), kinds(head, base)
    assert set(forward) == base ^ head
    assert {name for name, kind in forward.items() if kind is ChangeKind.ADDED} == head - base
    assert {name for name, kind in backward.items() if kind is ChangeKind.REMOVED} == head - base
