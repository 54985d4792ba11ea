"""Imports point down the layers of docs/architecture.md, and heavy clients stay in their rooms.

Read from the source with `ast`, so an import inside a function or under TYPE_CHECKING
counts like any other: each is a dependency a reader has to know about. A part is a
package or module of `controller` (the longest name in LAYERS that covers a module);
a part may import itself, anything in a lower layer, and nothing beside or above it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "controller"

LAYERS: list[set[str]] = [
    {"controller.__main__"},
    {"controller.cli"},
    {"controller.process"},
    {"controller.ui"},
    {"controller.plan", "controller.operations", "controller.notifications"},
    {"controller.runtime", "controller.executor", "controller.nodeagent"},
    {"controller.settings"},
    {
        "controller.metrics",
        "controller.gitsync",
        "controller.logstore",
        "controller.devcluster",
        "controller.notifications.settings",
    },
    {"controller.store", "controller.engine"},
    {"controller.spec"},
    {"controller.base"},
]
"""Top to bottom, as drawn in docs/architecture.md."""

CONFINED = {
    "sqlalchemy": {"controller.store"},
    "alembic": {"controller.store"},
    "kubernetes": {"controller.executor", "controller.devcluster", "controller.nodeagent"},
    "urllib3": {"controller.executor", "controller.devcluster", "controller.nodeagent"},
}
"""Third-party clients and the only parts that may import them."""

KNOWN_EXCEPTIONS: set[tuple[str, str]] = set()
"""Arrows that break the rules today, each to be removed, never added to."""


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> Iterator[str]:
    """Every module `path` imports, relative imports resolved."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path.parent)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(part for part in (base, node.module or "") if part)
            yield module
            # `from controller.spec import model` names a module, not an attribute.
            for alias in node.names:
                candidate = f"{module}.{alias.name}"
                if (ROOT.parent / candidate.replace(".", "/")).with_suffix(".py").exists():
                    yield candidate


def part_of(module: str) -> tuple[int, str] | None:
    """The layer (0 = top) and part that `module` belongs to, or None outside the layers."""
    best: tuple[int, str] | None = None
    for rank, layer in enumerate(LAYERS):
        for part in layer:
            covers = module == part or module.startswith(part + ".")
            if covers and (best is None or len(part) > len(best[1])):
                best = (rank, part)
    return best


def within(module: str, part: str) -> bool:
    return module == part or module.startswith(part + ".")


def broken_rules(importer: str, imported: str) -> str | None:
    """Why `importer` may not import `imported`, or None when it may."""
    top = imported.split(".")[0]
    if top in CONFINED:
        if any(within(importer, part) for part in CONFINED[top]):
            return None
        return f"{top} is imported only by {', '.join(sorted(CONFINED[top]))}"
    if top != "controller":
        return None
    source, target = part_of(importer), part_of(imported)
    if source is None or target is None:
        return None
    if source[1] == target[1] or target[0] > source[0]:
        return None
    if target[0] == source[0]:
        return f"{source[1]} and {target[1]} are on one layer and may not import each other"
    return f"{target[1]} is on a higher layer than {source[1]}"


def all_arrows() -> Iterator[tuple[str, str]]:
    for path in sorted(ROOT.rglob("*.py")):
        importer = module_name(path)
        for imported in imports(path):
            yield importer, imported


def test_every_module_of_the_controller_has_a_layer() -> None:
    unplaced = sorted(
        module_name(path) for path in ROOT.rglob("*.py") if part_of(module_name(path)) is None
    )
    assert unplaced == ["controller"], "add these to LAYERS and docs/architecture.md"


def test_imports_point_down_the_layers() -> None:
    broken = sorted(
        f"{importer} -> {imported}: {why}"
        for importer, imported in set(all_arrows())
        if (importer, imported) not in KNOWN_EXCEPTIONS
        and (why := broken_rules(importer, imported)) is not None
    )
    assert broken == []


def test_every_known_exception_still_exists() -> None:
    """An exception that was fixed must leave the list, so it cannot come back unseen."""
    arrows = set(all_arrows())
    assert sorted(KNOWN_EXCEPTIONS - arrows) == []


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("controller.runtime.launching", "controller.executor.naming"),
        ("controller.executor.kubernetes", "controller.runtime.active"),
        ("controller.executor.reconciler", "controller.runtime.seam"),
        ("controller.store.models", "controller.engine.states"),
        ("controller.cli.runs", "sqlalchemy.exc"),
        ("controller.process.wiring", "sqlalchemy.exc"),
        ("controller.process.lease", "kubernetes"),
        ("controller.cli.logs", "kubernetes.client"),
        ("controller.spec.model", "controller.store"),
        ("controller.store.tasks", "controller.engine.planner"),
        ("controller.engine.planner", "controller.store"),
        ("controller.ui.endpoints", "controller.cli.status"),
    ],
)
def test_the_check_refuses_an_arrow_that_points_up_or_sideways(
    importer: str, imported: str
) -> None:
    assert broken_rules(importer, imported) is not None


def test_the_check_lets_an_arrow_point_down() -> None:
    assert broken_rules("controller.runtime.engine", "controller.store") is None
    assert broken_rules("controller.store.database", "sqlalchemy") is None
    assert broken_rules("controller.executor.watcher", "kubernetes.client") is None
