"""How scripted behaviour is read from annotations and scenario files (no cluster)."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.nodeagent import behaviour as b


def pod(name: str = "p", namespace: str = "ns", **annotations: str) -> dict:
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"kubedag.io/dag": "sales"},
            "annotations": annotations,
        }
    }


def test_annotations_set_the_main_and_init_scripts():
    script = b.pod_script(
        pod(
            **{
                b.DURATION: "1.5",
                b.EXIT_CODE: "3",
                b.TERMINATION_MESSAGE: "m",
                b.INIT_DURATION: "0.5",
                b.INIT_FAILURE: "ErrImagePull",
            }
        ),
        scenario=[],
    )
    assert script.main == b.ContainerScript(duration=1.5, exit_code=3, termination_message="m")
    assert (script.init.duration, script.init.failure) == (0.5, "ErrImagePull")


@pytest.mark.parametrize(
    ("key", "value", "complaint"),
    [
        (b.EXIT_CODE, "three", "expected an integer"),
        (b.DURATION, "-1", "must not be negative"),
        (b.FAILURE, "Exploded", "expected one of"),
        (b.INIT_FAILURE, "NodeLost", "expected one of"),
    ],
)
def test_malformed_annotations_are_errors_naming_the_key(key, value, complaint):
    with pytest.raises(b.BehaviourError, match=complaint) as error:
        b.pod_script(pod(**{key: value}), scenario=[])
    assert key in str(error.value)


def test_mode_defaults_to_the_agent_unless_annotated_or_matched(tmp_path: Path):
    assert b.pod_mode(pod(), default=b.PROCESS, scenario=[]) == b.PROCESS
    assert b.pod_mode(pod(**{b.DURATION: "1"}), default=b.PROCESS, scenario=[]) == b.SCRIPTED
    assert b.pod_mode(pod(**{b.MODE: b.PROCESS}), default=b.SCRIPTED, scenario=[]) == b.PROCESS
    rules = [b.ScenarioRule(script=b.PodScript(), namespace="load-*")]
    assert b.pod_mode(pod(namespace="load-1"), default=b.PROCESS, scenario=rules) == b.SCRIPTED


def test_scenario_file_first_matching_rule_wins_and_annotations_override(tmp_path: Path):
    path = tmp_path / "scenario.yaml"
    path.write_text(
        "- match: {namespace: 'load-*', labels: {kubedag.io/dag: sales}}\n"
        "  duration: 2\n"
        "  termination-message: '{\"rows\": 1}'\n"
        "- match: {name: '*'}\n"
        "  failure: OOMKilled\n"
    )
    rules = b.load_scenario(path)
    first = b.pod_script(pod(namespace="load-7"), scenario=rules)
    assert (first.main.duration, first.main.termination_message) == (2.0, '{"rows": 1}')
    assert b.pod_script(pod(namespace="other"), scenario=rules).main.failure == "OOMKilled"
    annotated = b.pod_script(pod(namespace="load-7", **{b.EXIT_CODE: "4"}), scenario=rules)
    assert annotated.main.exit_code == 4


def test_unreadable_scenario_file_is_a_clear_error(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text("match: not-a-list\n")
    with pytest.raises(b.BehaviourError, match="expected a list of rules"):
        b.load_scenario(path)
