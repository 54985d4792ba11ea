"""Validation problems: errors as values, located in the file that caused them."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a DAG file, at the 1-based line and column of its node."""

    path: str
    line: int
    col: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f" ({self.field})" if self.field else ""
        return f"{self.path}:{self.line}:{self.col}: {self.message}{where}"

    def to_json(self) -> dict[str, str | int]:
        return asdict(self)
