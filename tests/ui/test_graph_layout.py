"""The run graph's layout, computed by the UI's own module in a real Chromium."""

from __future__ import annotations

from typing import Any

import pytest

from tests.ui.browser import Browser

pytestmark = pytest.mark.usefixtures("browser_available")

# partner-import's shape: a failure branch and a cleanup that waits for both branches.
PARTNER_IMPORT = [
    {"name": "fetch-files", "dependsOn": []},
    {"name": "validate-files", "dependsOn": ["fetch-files"]},
    {"name": "publish", "dependsOn": ["validate-files"]},
    {"name": "notify-failure", "dependsOn": ["validate-files"], "triggerRule": "oneFailed"},
    {"name": "cleanup", "dependsOn": ["publish", "notify-failure"], "triggerRule": "allDone"},
]


def layout(browser: Browser, tasks: list[dict[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = browser.driver.execute_async_script(
        """
        const [tasks, done] = arguments;
        import("/ui/js/graph.js").then((graph) => {
          const out = graph.layout(tasks);
          done({nodes: Object.fromEntries(out.nodes), width: out.width, height: out.height});
        }, (error) => done({error: String(error)}));
        """,
        tasks,
    )
    assert "error" not in result, result
    return result


def test_every_task_is_right_of_all_it_depends_on(static_browser: Browser) -> None:
    nodes = layout(static_browser, PARTNER_IMPORT)["nodes"]
    for task in PARTNER_IMPORT:
        for parent in task["dependsOn"]:
            assert nodes[parent]["x"] < nodes[task["name"]]["x"], (parent, task["name"])


def test_tasks_of_one_layer_share_a_column_and_do_not_overlap(static_browser: Browser) -> None:
    nodes = layout(static_browser, PARTNER_IMPORT)["nodes"]
    assert nodes["publish"]["x"] == nodes["notify-failure"]["x"]
    assert abs(nodes["publish"]["y"] - nodes["notify-failure"]["y"]) >= 56


def test_the_drawing_holds_every_node(static_browser: Browser) -> None:
    result = layout(static_browser, PARTNER_IMPORT)
    for node in result["nodes"].values():
        assert node["x"] >= 0
        assert node["x"] + 188 <= result["width"]
        assert node["y"] >= 0
        assert node["y"] + 56 <= result["height"]


def test_ordering_by_neighbours_uncrosses_two_chains(static_browser: Browser) -> None:
    # Listed so that the second layer starts crossed: b2 under a1's child, b1 under a2's.
    tasks = [
        {"name": "a1", "dependsOn": []},
        {"name": "a2", "dependsOn": []},
        {"name": "b2", "dependsOn": ["a2"]},
        {"name": "b1", "dependsOn": ["a1"]},
    ]
    nodes = layout(static_browser, tasks)["nodes"]
    assert (nodes["a1"]["y"] < nodes["a2"]["y"]) == (nodes["b1"]["y"] < nodes["b2"]["y"])


def test_a_dependency_on_an_unknown_task_is_ignored(static_browser: Browser) -> None:
    nodes = layout(static_browser, [{"name": "only", "dependsOn": ["gone"]}])["nodes"]
    assert nodes["only"]["x"] == 12
