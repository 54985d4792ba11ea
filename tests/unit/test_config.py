"""The controller configuration: precedence, validation, and clear errors."""

from pathlib import Path

import pytest

from controller.base.tries import TryKey
from controller.executor.kubernetes import settings_from_config
from controller.executor.podspec import PodIdentity, RenderedCommand, build_pod
from controller.settings.loading import duration_setting, load_config
from controller.settings.model import ConfigError
from controller.spec.model import Task


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return str(path)


def test_defaults_need_no_file() -> None:
    config = load_config(environ={})
    assert config.executor.namespaces == ("default",)
    assert config.executor.delete_on_success is True
    assert config.executor.delete_on_failure is False
    assert config.git.interval_seconds == 30.0


def test_file_values_are_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "git: {url: https://example.org/dags.git, ref: prod, dagsPath: dags, interval: 1m}\n"
        "executor: {namespaces: [a, b], qps: 50, cleanup: {deleteOnSuccess: false, ttl: 1h}}\n",
    )
    config = load_config(path=path, environ={})
    assert config.git.url == "https://example.org/dags.git"
    assert config.git.interval_seconds == 60.0
    assert config.executor.namespaces == ("a", "b")
    assert config.executor.qps == 50
    assert config.executor.delete_on_success is False
    assert config.executor.finished_pod_ttl_seconds == 3600.0


def test_environment_overrides_file_and_flags_override_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "git: {ref: from-file}\nexecutor: {parallelism: 5}\n")
    environ = {"KUBEDAG_GIT_REF": "from-env", "KUBEDAG_PARALLELISM": "7"}
    config = load_config(path=path, environ=environ, overrides={"git.ref": "from-flag"})
    assert config.git.ref == "from-flag"
    assert config.executor.parallelism == 7


def test_config_file_named_by_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "instance: blue\n")
    assert load_config(environ={"KUBEDAG_CONFIG": path}).instance == "blue"


def test_every_problem_is_reported_with_its_field(tmp_path: Path) -> None:
    path = write(tmp_path, "executor: {qps: -1, workrs: 3}\nlogFormat: xml\n")
    with pytest.raises(ConfigError) as error:
        load_config(path=path, environ={})
    message = str(error.value)
    assert "executor.qps" in message
    assert "'workrs' was unexpected" in message
    assert "logFormat" in message
    assert path in message


def test_renew_deadline_must_be_shorter_than_lease(tmp_path: Path) -> None:
    path = write(tmp_path, "leaderElection: {leaseDuration: 10s, renewDeadline: 10s}\n")
    with pytest.raises(ConfigError, match=r"leaderElection\.renewDeadline") as error:
        load_config(path=path, environ={})
    assert path in str(error.value)


def test_retry_period_with_its_jitter_must_be_shorter_than_the_renew_deadline(
    tmp_path: Path,
) -> None:
    # Refused here, with its field, rather than by the elector at start with a traceback.
    jittered = write(tmp_path, "leaderElection: {renewDeadline: 10s, retryPeriod: 9s}\n")
    with pytest.raises(ConfigError, match=r"leaderElection\.retryPeriod: times 1\.2"):
        load_config(path=jittered, environ={})
    fits = write(tmp_path, "leaderElection: {renewDeadline: 10s, retryPeriod: 8s}\n")
    assert load_config(path=fits, environ={}).leader_election.retry_period_seconds == 8.0


def test_bad_environment_value_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"executor\.parallelism"):
        load_config(environ={"KUBEDAG_PARALLELISM": "many"})


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(path=str(tmp_path / "missing.yaml"), environ={})


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30.0), ("10m", 600.0), ("1h30m", 5400.0), ("1.5s", 1.5), (90, 90.0), ("1d", 86400.0)],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert duration_setting(text, field_name="x") == seconds


@pytest.mark.parametrize("text", ["", "10 minutes", "1.5h", "-5s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ConfigError, match="x: "):
        duration_setting(text, field_name="x")


def test_pod_settings_reach_the_worker_pods(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "git: {credentialsSecret: git-token, credentialsUsername: oauth2}\n"
        "executor:\n"
        "  imagePullPolicy: IfNotPresent\n"
        "  securityDefaults: false\n"
        "  cleanup: {maxDeferral: 5s}\n",
    )
    config = load_config(path=path, environ={})
    settings = settings_from_config(config, repo_url="https://example.org/dags.git", dags_path="")
    assert settings.cleanup_max_deferral == 5.0
    identity = PodIdentity(dag="d", key=TryKey(1, "t", 0, 1), revision="a" * 40, controller="k")
    pod = build_pod(
        task=Task(name="t", image="busybox:1.36", command=("true",)),
        identity=identity,
        rendered=RenderedCommand(command=("true",)),
        config=settings.pod,
    )
    containers = [*pod["spec"]["initContainers"], *pod["spec"]["containers"]]
    assert {c["imagePullPolicy"] for c in containers} == {"IfNotPresent"}
    assert all("securityContext" not in c for c in containers)
    assert "securityContext" not in pod["spec"]
    checkout_env = {e["name"]: e.get("value") for e in pod["spec"]["initContainers"][0]["env"]}
    assert checkout_env["KUBEDAG_GIT_USERNAME"] == "oauth2"


def test_pod_settings_default_to_restrictive_pods_and_a_30s_deferral() -> None:
    config = load_config(environ={})
    assert config.executor.security_defaults is True
    assert config.executor.image_pull_policy is None
    assert config.executor.cleanup_max_deferral_seconds == 30.0
    assert config.git.credentials_username == "x-access-token"


def test_an_unknown_image_pull_policy_names_the_field(tmp_path: Path) -> None:
    path = write(tmp_path, "executor: {imagePullPolicy: Sometimes}\n")
    with pytest.raises(ConfigError, match=r"executor\.imagePullPolicy"):
        load_config(path=path, environ={})
