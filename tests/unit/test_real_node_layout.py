"""What the real node, its images and the local-real-node overlay must agree on.

The overlay is static YAML and the node is Python; these names cross between them, so a
change on one side alone would deploy a controller that cannot pull its image, reach
the apiserver or write its logs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from controller.devcluster.hostchanges import HostChanges
from controller.devcluster.images import CONTROLLER_IMAGE, STAND_INS, source_files
from controller.devcluster.layout import REAL_PORT_BASE
from controller.devcluster.realnode import HOST_LOG_STORE
from controller.executor.podspec import PodConfig

ROOT = Path(__file__).resolve().parents[2]
OVERLAY = ROOT / "manifests" / "overlays" / "local-real-node"


def test_the_controller_image_is_built_under_the_name_the_base_deployment_uses() -> None:
    deployment = yaml.safe_load((ROOT / "manifests" / "base" / "deployment.yaml").read_text())
    images = {c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]}
    assert images == {CONTROLLER_IMAGE}


def test_the_overlay_reaches_the_apiserver_of_the_real_node_cluster() -> None:
    patch = yaml.safe_load((OVERLAY / "deployment.yaml").read_text())
    env = {e["name"]: e["value"] for e in patch["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["KUBERNETES_SERVICE_HOST"] == "127.0.0.1"
    assert int(env["KUBERNETES_SERVICE_PORT"]) == REAL_PORT_BASE


def test_the_overlay_log_volume_is_the_directory_the_node_prepares() -> None:
    volume = yaml.safe_load((OVERLAY / "logs-volume.yaml").read_text())
    assert Path(volume["spec"]["hostPath"]["path"]) == HOST_LOG_STORE


def test_worker_pods_default_images_have_local_stand_ins() -> None:
    names = {name for stand_in in STAND_INS for name in stand_in.names}
    init_image = PodConfig(repo_url="https://example.com/r.git").init_image
    assert f"docker.io/{init_image}" in names
    samples = {
        yaml.safe_load(p.read_text())["spec"]["defaults"]["image"]
        for p in (ROOT / "sample-dags").glob("*.yaml")
    }
    assert {f"docker.io/library/{image}" for image in samples} <= names


def test_the_controller_image_follows_every_file_the_dockerfile_copies() -> None:
    files = {p.relative_to(ROOT).as_posix() for p in source_files(ROOT)}
    assert {"Dockerfile", "pyproject.toml", "README.md", "controller/cli/__init__.py"} <= files
    assert not any("__pycache__" in f for f in files)


def test_a_journalled_directory_is_removed_and_an_existing_one_kept(tmp_path: Path) -> None:
    journal = HostChanges(tmp_path / "journal.json")
    existing = tmp_path / "existing"
    existing.mkdir()
    created = tmp_path / "created"
    journal.expect_dir(existing)
    journal.expect_dir(created)
    (created / "sub").mkdir(parents=True)
    existing_child = existing / "child"
    existing_child.mkdir()
    assert journal.restore() == [f"directory {created}"]
    assert existing_child.exists()
    assert not created.exists()
    assert not journal.path.exists()


@pytest.mark.parametrize("kind", ["dir", "cgroup"])
def test_a_journal_entry_is_written_before_the_change_and_once(tmp_path: Path, kind: str) -> None:
    journal = HostChanges(tmp_path / "journal.json")
    target = tmp_path / "x"
    record = journal.expect_dir if kind == "dir" else journal.expect_cgroup
    record(target)
    record(target)
    assert journal.entries() == [{"kind": kind, "path": str(target)}]
    assert HostChanges(journal.path).entries() == journal.entries()
