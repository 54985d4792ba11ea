"""The controller's configuration as the code reads it: typed values, defaults, rules.

Every setting has its default here, and every rule that ties settings together (a
renew deadline shorter than the lease it renews, SSH with known hosts) is written here,
to be checked once a whole configuration exists; each problem names the field as the
configuration file spells it. Where the values come from (the file, the environment, flags) is
`controller.settings.loading`'s business: nothing here reads a file or the environment.

Secrets are never values here: the database URL comes from the environment (a Secret
mounted as env), git credentials and the webhook secret are *paths* of mounted files.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

from controller.notifications.settings import NotificationSettings
from controller.spec.podpolicy import PodPolicy


class ConfigError(ValueError):
    """The configuration cannot be used; the message lists every problem."""


@dataclass(frozen=True)
class GitConfig:
    url: str | None = None
    ref: str = "main"
    dags_path: str = "."
    interval_seconds: float = 30.0
    checkout_root: str | None = None
    token_file: str | None = None
    username_file: str | None = None
    password_file: str | None = None
    # Accepted only to be refused at start with a reason (SSH repositories are not
    # supported), rather than as unknown keys.
    ssh_key_file: str | None = None
    known_hosts_file: str | None = None
    webhook_secret_file: str | None = None
    # The Secret worker pods read git credentials from (a key holding an HTTPS token).
    credentials_secret: str | None = None
    credentials_secret_key: str = "token"  # noqa: S105 - a key name, not a secret
    # Sent with that token: GitHub wants x-access-token, GitLab oauth2, most hosts any.
    credentials_username: str = "x-access-token"


@dataclass(frozen=True)
class ExecutorConfig:
    namespaces: tuple[str, ...] = ("default",)
    parallelism: int = 1024
    workers: int = 16
    qps: float | None = 500.0
    burst: int = 1000
    init_image: str = "alpine/git:2.45.2"
    pod_template_file: str | None = None
    service_account: str | None = None
    # The pod policy (controller/spec/podpolicy.py): the Secrets a DAG may read, and the
    # controller's own ServiceAccount, which no DAG may run as.
    allowed_secrets: tuple[str, ...] = ()
    controller_service_account: str = "kubedag-controller"
    unschedulable_timeout_seconds: float = 300.0
    # A pod whose task has not started this long after its creation fails; 0: no limit.
    pending_timeout_seconds: float = 900.0
    max_infra_retries: int = 3
    reconcile_interval_seconds: float = 60.0
    delete_on_success: bool = True
    delete_on_failure: bool = False
    finished_pod_ttl_seconds: float = 0.0
    cleanup_max_deferral_seconds: float = 30.0
    image_pull_policy: str | None = None
    security_defaults: bool = True


LEASE_JITTER = 1.2
"""A replica waits `retryPeriod` plus up to this share of it again between lease polls,
as client-go's JitterUntil: replicas started together drift apart instead of racing."""


@dataclass(frozen=True)
class LeaderElectionConfig:
    enabled: bool = True
    namespace: str | None = None
    lease_name: str = "kubedag-controller"
    identity: str = field(default_factory=socket.gethostname)
    lease_duration_seconds: float = 15.0
    renew_deadline_seconds: float = 10.0
    retry_period_seconds: float = 2.0


@dataclass(frozen=True)
class Config:
    database_url: str | None = None
    kubeconfig: str | None = None
    data_dir: str = str(Path.home() / ".local" / "share" / "kubedag")
    instance: str = "kubedag"
    log_format: str = "json"
    log_level: str = "INFO"
    log_store: str | None = None
    http_bind: str = "0.0.0.0"  # noqa: S104 - probes and scrapes reach the pod's IP
    http_port: int = 8080
    # The file holding the bearer token API actions need; None: actions are refused.
    api_token_file: str | None = None
    # Reads of the API need the token too (writes always do).
    api_protect_reads: bool = False
    # Finished runs older than this are deleted with their rows and logs; None: never.
    retention_older_than_seconds: float | None = None
    retention_interval_seconds: float = 86_400.0
    notifications: NotificationSettings = field(default_factory=NotificationSettings)
    git: GitConfig = field(default_factory=GitConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    leader_election: LeaderElectionConfig = field(default_factory=LeaderElectionConfig)

    @property
    def log_store_location(self) -> str:
        return self.log_store or str(Path(self.data_dir) / "logs")


def pod_policy(config: Config) -> PodPolicy:
    """The operator's limits on what DAGs ask of their pods."""
    return PodPolicy(
        allowed_secrets=frozenset(config.executor.allowed_secrets),
        controller_service_account=config.executor.controller_service_account,
    )


def rule_problems(config: Config) -> list[str]:
    """Every rule between settings that `config` breaks, each naming its field."""
    problems: list[str] = []
    leader = config.leader_election
    if leader.renew_deadline_seconds >= leader.lease_duration_seconds:
        problems.append(
            "leaderElection.renewDeadline: must be shorter than leaderElection.leaseDuration, "
            "so a leader that cannot renew stops before another can take over"
        )
    if leader.retry_period_seconds * LEASE_JITTER >= leader.renew_deadline_seconds:
        problems.append(
            f"leaderElection.retryPeriod: times {LEASE_JITTER} (its most jittered wait) must "
            "be shorter than renewDeadline, or a single missed renewal would end leadership"
        )
    git = config.git
    if bool(git.username_file) != bool(git.password_file):
        problems.append("git: usernameFile and passwordFile go together")
    if config.executor.service_account == config.executor.controller_service_account:
        problems.append(
            "executor.serviceAccount: worker pods must not run as the controller's own "
            "ServiceAccount (executor.controllerServiceAccount)"
        )
    if len(set(config.executor.namespaces)) != len(config.executor.namespaces):
        problems.append("executor.namespaces: a namespace is listed twice")
    return problems
