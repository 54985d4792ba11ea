"""The git token and webhook secret files come from optional Secrets: absent means off."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from controller.gitsync import GitSync, HttpsAuth
from controller.process.wiring import StartupError, gitsync_config, webhook_secret
from controller.settings.loading import load_config
from controller.settings.model import Config
from tests.gitsync.conftest import make_remote
from tests.gitsync.httpgit import serve_git


def config_with(tmp_path: Path, **git: str) -> Config:
    return load_config(
        environ={},
        overrides={
            "dataDir": str(tmp_path),
            "git.url": "https://git.example.com/dags.git",
            **{f"git.{key}": value for key, value in git.items()},
        },
    )


def test_a_token_file_that_is_not_there_means_no_token(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = config_with(tmp_path, tokenFile=str(tmp_path / "absent" / "token"))
    with caplog.at_level(logging.WARNING):
        assert gitsync_config(config).auth is None
    assert "git.tokenFile: no file at" in caplog.text


def test_a_token_file_that_is_there_is_used(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("secret-token\n")
    auth = gitsync_config(config_with(tmp_path, tokenFile=str(token))).auth
    assert isinstance(auth, HttpsAuth)


def test_a_webhook_secret_file_that_is_not_there_turns_the_webhook_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = config_with(tmp_path, webhookSecretFile=str(tmp_path / "absent"))
    with caplog.at_level(logging.WARNING):
        assert webhook_secret(config) is None
    assert "the push webhook is off" in caplog.text


def test_an_empty_webhook_secret_file_is_still_an_error(tmp_path: Path) -> None:
    empty = tmp_path / "secret"
    empty.write_text("")
    with pytest.raises(StartupError, match="is empty"):
        webhook_secret(config_with(tmp_path, webhookSecretFile=str(empty)))


def test_the_controllers_fetch_sends_the_configured_user_name_with_its_token(
    tmp_path: Path,
) -> None:
    # A server that takes the token only with its own user name (GitLab: oauth2).
    remote = make_remote(tmp_path / "remote")
    sha = remote.commit({"a.yaml": "a\n"})
    token = tmp_path / "token"
    token.write_text("secret-token\n")
    with serve_git(remote.bare.parent, username="oauth2", password="secret-token") as base:
        config = load_config(
            environ={},
            overrides={
                "dataDir": str(tmp_path / "data"),
                "git.url": f"{base}/{remote.bare.name}",
                "git.tokenFile": str(token),
                "git.credentialsUsername": "oauth2",
            },
        )
        assert GitSync(gitsync_config(config)).sync_once().revision == sha
