"""The graph index: topological numbering, adjacency, template reads, and its cache."""

from __future__ import annotations

import pytest

from controller.engine.graph import GraphCache, build_graph
from tests.engine.support import dag, task


def test_tasks_are_numbered_so_upstreams_come_first() -> None:
    graph = build_graph(
        dag(task("load", "transform"), task("transform", "extract"), task("extract"))
    )
    assert [t.name for t in graph.tasks] == ["extract", "transform", "load"]
    assert graph.upstream == ((), (0,), (1,))
    assert graph.downstream == ((1,), (2,), ())


def test_instance_count_sums_fan_out() -> None:
    graph = build_graph(dag(task("a", items=[1, 2, 3]), task("b", "a")))
    assert graph.fan_out == (3, 1)
    assert graph.instance_count == 4


def test_reads_lists_the_tasks_whose_results_templates_use() -> None:
    graph = build_graph(
        dag(
            task("a"),
            task("b"),
            task(
                "c",
                "a",
                "b",
                command=["{{ tasks.b.result }}"],
                env=[{"name": "A", "value": "{{ tasks.a.result }}"}],
            ),
        )
    )
    assert graph.reads[graph.index["c"]] == (graph.index["a"], graph.index["b"])


def test_a_cycle_is_refused_as_a_bug() -> None:
    with pytest.raises(ValueError, match="cycle"):
        build_graph(dag(task("a", "b"), task("b", "a")))


def test_the_cache_keys_by_dag_name_and_spec_hash() -> None:
    cache = GraphCache(max_entries=2)
    old = dag(task("a"))
    new = dag(task("a"), task("b", "a"))
    assert cache.get(old, spec_hash="h1") is cache.get(old, spec_hash="h1")
    assert cache.get(new, spec_hash="h2").instance_count == 2
    assert cache.get(old, spec_hash="h1").instance_count == 1


def test_the_cache_forgets_the_least_recently_used_graph() -> None:
    cache = GraphCache(max_entries=1)
    first = cache.get(dag(task("a")), spec_hash="h1")
    cache.get(dag(task("a")), spec_hash="h2")
    assert cache.get(dag(task("a")), spec_hash="h1") is not first
