"""Turning a validated `Config` into the controller's parts, each checked on its own.

Every builder here fails with a `StartupError` whose message names the setting to fix,
so `kubedag controller` can print one line and exit 2 instead of a traceback from deep
inside git, SQLAlchemy or the Kubernetes client. The trap it avoids is a controller that
starts, reports ready, and fails minutes later on the first sync or the first launch
because a token file was missing or the database was never migrated.

Two files are the exception: the git token and the webhook secret. The manifests mount
them from Secrets marked optional (a public repository needs no token, and the webhook
is an extra), so a configured path with no file behind it means "not set up": the
feature is off and a warning says which Secret would turn it on. A file that exists but
cannot be read, or is empty, is still an error.
"""

from __future__ import annotations

import logging
from pathlib import Path

from controller.executor.kubeclient import CREDENTIAL_ERRORS, ApiClient, make_api_client
from controller.gitsync import GitSyncConfig, GitSyncConfigError, HttpsAuth
from controller.gitsync.credentials import redact_url_userinfo
from controller.gitsync.settings import is_ssh_url
from controller.settings.loading import database_url_for
from controller.settings.model import Config
from controller.store import NotMigratedError, Store, display_url, upgrade
from controller.store.errors import DatabaseError

log = logging.getLogger(__name__)


class StartupError(RuntimeError):
    """The controller cannot start; the message says what to change."""


def _optional_file(setting: str, path: str | None, *, without: str) -> str | None:
    """`path` if a file is there; None (with a warning) if nothing is, as with an
    optional Secret that was not created."""
    if not path:
        return None
    if not Path(path).exists():
        log.warning("%s: no file at %s, so %s", setting, path, without)
        return None
    return path


def open_store(config: Config, *, migrate: bool) -> Store:
    """Connect, migrating first when asked; an unmigrated database is refused."""
    url = database_url_for(config)
    try:
        if migrate:
            upgrade(url)
        return Store.connect(url)
    except NotMigratedError as error:
        hint = "" if migrate else " (or start the controller with --migrate)"
        raise StartupError(f"{error}{hint}") from error
    except (DatabaseError, ValueError) as error:
        raise StartupError(f"cannot open the database {display_url(url)}: {error}") from error


def gitsync_config(config: Config) -> GitSyncConfig:
    git = config.git
    if not git.url:
        raise StartupError("git.url: the DAG repository is not set (--git-url or KUBEDAG_GIT_URL)")
    ssh_settings = [
        name
        for name, value in (
            ("git.sshKeyFile", git.ssh_key_file),
            ("git.knownHostsFile", git.known_hosts_file),
        )
        if value
    ]
    if is_ssh_url(git.url) or ssh_settings:
        what = (
            f"git.url: {redact_url_userinfo(git.url)} is reached over SSH"
            if is_ssh_url(git.url)
            else f"{' and '.join(ssh_settings)}: set, but SSH repositories are not supported"
        )
        raise StartupError(
            f"{what}; worker pods check out each run's commit with the HTTPS token of "
            "git.credentialsSecret only, so every task would fail in its checkout. Use the "
            "repository's https:// URL with git.tokenFile and git.credentialsSecret"
            + (f", and remove {' and '.join(ssh_settings)}" if ssh_settings else "")
        )
    root = Path(git.checkout_root or Path(config.data_dir) / "git").expanduser()
    auth: HttpsAuth | None = None
    if token_file := _optional_file(
        "git.tokenFile", git.token_file, without="the repository is fetched without a token"
    ):
        auth = HttpsAuth(token_file=Path(token_file), token_username=git.credentials_username)
    elif git.username_file and git.password_file:
        auth = HttpsAuth(
            username_file=Path(git.username_file), password_file=Path(git.password_file)
        )
    for setting, value in (
        ("git.usernameFile", git.username_file),
        ("git.passwordFile", git.password_file),
    ):
        if value and not Path(value).is_file():
            raise StartupError(f"{setting}: no such file {value}")
    try:
        return GitSyncConfig(
            repo_url=git.url,
            root=root,
            ref=git.ref,
            dags_path=git.dags_path,
            interval=git.interval_seconds,
            auth=auth,
        )
    except GitSyncConfigError as error:
        raise StartupError(f"git: {error}") from error


def webhook_secret(config: Config) -> bytes | None:
    """The shared secret push webhooks are verified with; None turns the route off."""
    path = _optional_file(
        "git.webhookSecretFile",
        config.git.webhook_secret_file,
        without="the push webhook is off",
    )
    if path is None:
        return None
    try:
        secret = Path(path).read_bytes().strip()
    except OSError as error:
        raise StartupError(
            f"git.webhookSecretFile: cannot read {path}: {error.strerror}"
        ) from error
    if not secret:
        raise StartupError(f"git.webhookSecretFile: {path} is empty")
    return secret


def api_token(config: Config) -> str | None:
    """The bearer token API actions need; None (no file configured, or none there, as with
    an optional Secret not created) refuses every action."""
    path = _optional_file(
        "api.tokenFile", config.api_token_file, without="the API refuses every action"
    )
    if path is None:
        return None
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise StartupError(f"api.tokenFile: cannot read {path}: {error}") from error
    if not token:
        raise StartupError(f"api.tokenFile: {path} is empty")
    return token


def kubernetes_client(config: Config, *, pool_maxsize: int) -> ApiClient:
    """From the kubeconfig when one is named (flag or $KUBECONFIG), else in-cluster."""
    try:
        return make_api_client(kubeconfig=config.kubeconfig, pool_maxsize=pool_maxsize)
    except CREDENTIAL_ERRORS as error:
        where = config.kubeconfig or "$KUBECONFIG, ~/.kube/config or the in-cluster account"
        raise StartupError(
            f"cannot load Kubernetes credentials from {where}: {error} "
            "(pass --kubeconfig outside a cluster)"
        ) from error


def leader_namespace(config: Config) -> str:
    """Where the Lease lives: as configured, else the pod's own namespace, else the first."""
    if config.leader_election.namespace:
        return config.leader_election.namespace
    service_account = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
    if service_account.is_file():
        return service_account.read_text().strip()
    return config.executor.namespaces[0]
