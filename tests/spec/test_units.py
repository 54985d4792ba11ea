"""Durations and Kubernetes quantities parse exactly, or explain why not."""

from __future__ import annotations

from decimal import Decimal

import pytest

from controller.base.durations import DurationError, parse_duration
from controller.spec.quantities import QuantityError, parse_quantity


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("10m", 600),
        ("1h", 3600),
        ("1h30m", 5400),
        ("2d", 172800),
        (90, 90),
        ("1.5s", 1.5),
        ("2m0.5s", 120.5),
        (1.5, 1.5),
    ],
)
def test_durations_parse(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "1m1h", "1.5h", "-1s", True, -3])
def test_bad_durations_are_refused(text: object) -> None:
    with pytest.raises(DurationError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("100m", Decimal("0.1")),
        ("0.1", Decimal("0.1")),
        (2, Decimal(2)),
        ("128Mi", Decimal(128 * 1024**2)),
        ("1G", Decimal(10**9)),
        ("1e3", Decimal(1000)),
    ],
)
def test_quantities_parse_to_base_units(text: object, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["1XB", "Mi", "1 Gi", "-1", "1.2.3", None])
def test_bad_quantities_are_refused(text: object) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(text)
