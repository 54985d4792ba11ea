"""A git-sync configuration that cannot work is refused at once, naming the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.gitsync import GitSyncConfig, GitSyncConfigError, HttpsAuth

URL = "https://git.example.com/team/dags.git"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"dags_path": "../elsewhere"}, "inside the repository"),
        ({"dags_path": "/etc"}, "inside the repository"),
        ({"ref": "--upload-pack=evil"}, "not a branch, tag or commit SHA"),
        ({"ref": ""}, "not a branch, tag or commit SHA"),
        ({"interval": 0}, "interval must be positive"),
        ({"depth": -1}, "depth must be 0"),
        ({"command_timeout": 0}, "command timeout must be positive"),
        ({"keep_revisions": 0}, "keep_revisions must be at least 1"),
        ({"repo_url": "--config=x"}, "is not a URL"),
        (
            {"repo_url": "ssh://git@host/r.git", "auth": HttpsAuth(token_file=Path("t"))},
            "is not https",
        ),
    ],
)
def test_impossible_settings_are_refused(
    tmp_path: Path, overrides: dict[str, object], message: str
) -> None:
    settings: dict[str, object] = {"repo_url": URL, "root": tmp_path, **overrides}
    with pytest.raises(GitSyncConfigError, match=message):
        GitSyncConfig(**settings)  # type: ignore[arg-type]


def test_https_auth_needs_a_token_or_both_basic_files(tmp_path: Path) -> None:
    with pytest.raises(GitSyncConfigError, match="needs a token file"):
        HttpsAuth(username_file=tmp_path / "user")
    with pytest.raises(GitSyncConfigError, match="not both"):
        HttpsAuth(token_file=tmp_path / "t", password_file=tmp_path / "p")


def test_a_full_sha_is_a_pinned_ref_and_a_branch_is_not(tmp_path: Path) -> None:
    assert GitSyncConfig(repo_url=URL, root=tmp_path, ref="0123456789" * 4).pinned
    assert not GitSyncConfig(repo_url=URL, root=tmp_path, ref="release-2026").pinned
