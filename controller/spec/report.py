"""Reporting problems of one document by path, and reading its raw value defensively.

The semantic rules run even on documents the schema rejected (so a user sees every
mistake at once); `as_dict` and `as_list` let them read such values without
crashing, treating a wrongly shaped part as empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from controller.spec.loader import Document, Path, field_name
from controller.spec.model import JSON
from controller.spec.problems import Problem


def as_dict(value: JSON) -> dict[str, JSON]:
    return value if isinstance(value, dict) else {}


def as_list(value: JSON) -> list[JSON]:
    return value if isinstance(value, list) else []


@dataclass
class Reporter:
    """Collects problems located at paths of one document."""

    document: Document
    path: str
    problems: list[Problem] = field(default_factory=list)

    def at(
        self, where: Path, message: str, *, key: bool = False, offset: int | None = None
    ) -> None:
        if key:
            location = self.document.key_at(where)
        elif offset is not None:
            location = self.document.text_column(where, offset)
        else:
            location = self.document.at(where)
        self.problems.append(
            Problem(self.path, location.line, location.col, field_name(where), message)
        )
