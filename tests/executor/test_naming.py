"""Pod names and label values: always valid, stable, and distinct for distinct identities."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.base.naming import (
    MAX_LENGTH,
    is_label_value,
    label_value,
    pod_name,
)
from controller.base.tries import TryKey
from tests.executor.kube_names import DNS_LABEL, is_dns_label

LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

dag_names = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True)
any_names = st.text(min_size=1, max_size=120)
counts = st.integers(min_value=0, max_value=2**63 - 1)
identities = st.tuples(
    st.one_of(dag_names, any_names), counts, st.one_of(dag_names, any_names), counts, counts
)


def name_of(identity: tuple[str, int, str, int, int]) -> str:
    dag, run_id, task, item, try_number = identity
    return pod_name(dag=dag, key=TryKey(run_id, task, item, try_number))


def test_a_short_identity_reads_as_dag_task_hash_run_item_try() -> None:
    name = pod_name(dag="daily-sales", key=TryKey(42, "extract", 3, 2))
    assert re.fullmatch(r"daily-sales-extract-[a-z2-7]{10}-42-3-2", name)


@given(identities)
@settings(max_examples=500)
def test_pod_name_is_always_a_dns_label(identity: tuple[str, int, str, int, int]) -> None:
    name = name_of(identity)
    assert len(name) <= MAX_LENGTH
    assert DNS_LABEL.match(name), name
    assert is_dns_label(name)


@given(identities)
def test_pod_name_is_stable(identity: tuple[str, int, str, int, int]) -> None:
    assert name_of(identity) == name_of(identity)


@given(st.lists(identities, min_size=2, max_size=40, unique=True))
@settings(max_examples=300)
def test_distinct_identities_get_distinct_names(
    identities_: list[tuple[str, int, str, int, int]],
) -> None:
    assert len({name_of(identity) for identity in identities_}) == len(identities_)


def test_a_large_sample_of_truncated_names_has_no_collision() -> None:
    # Every name here is cut to the same readable prefix and numbers, so only the hash
    # can tell them apart: the sample measures the hash, not the readable parts.
    rng = random.Random(20260101)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-"
    identities_ = {
        (
            "d" * 50 + "".join(rng.choices(alphabet, k=13)),
            rng.randrange(3),
            "t" * 50 + "".join(rng.choices(alphabet, k=13)),
            rng.randrange(3),
            1,
        )
        for _ in range(50_000)
    }
    assert len({name_of(identity) for identity in identities_}) == len(identities_)


def test_names_sharing_a_long_prefix_stay_distinct() -> None:
    dag = "d" * 63
    names = {
        pod_name(dag=dag, key=TryKey(7, "t" * 60 + suffix, 0, 1))
        for suffix in ("aaa", "aab", "aba", "baa")
    }
    assert len(names) == 4


def test_the_hash_sees_where_dag_ends_and_task_begins() -> None:
    first = pod_name(dag="a-b", key=TryKey(1, "c", 0, 1))
    second = pod_name(dag="a", key=TryKey(1, "b-c", 0, 1))
    assert first != second


def test_numbers_too_large_to_show_are_left_to_the_hash() -> None:
    huge = 10**40
    name = pod_name(dag="dag", key=TryKey(huge, "task", huge, huge))
    assert is_dns_label(name)
    assert name.startswith("dag-task-")


def test_negative_numbers_are_refused() -> None:
    with pytest.raises(ValueError, match="run_id"):
        pod_name(dag="d", key=TryKey(-1, "t", 0, 1))


@given(any_names)
@settings(max_examples=500)
def test_label_value_is_always_valid(value: str) -> None:
    result = label_value(value)
    assert len(result) <= MAX_LENGTH
    assert LABEL_VALUE.match(result), result
    assert is_label_value(result)


@given(st.from_regex(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?", fullmatch=True))
def test_a_valid_label_value_is_kept_as_it_is(value: str) -> None:
    assert label_value(value) == value


@given(st.lists(any_names, min_size=2, max_size=40, unique=True))
@settings(max_examples=300)
def test_distinct_values_get_distinct_label_values(values: list[str]) -> None:
    assert len({label_value(value) for value in values}) == len(values)


def test_a_long_value_keeps_a_readable_head() -> None:
    value = "controller-" + "x" * 80
    result = label_value(value)
    assert result.startswith("controller-xxx")
    assert len(result) == MAX_LENGTH
    assert label_value(value) == result
