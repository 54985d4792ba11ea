"""Where the controller's configuration comes from: one YAML file, environment, flags.

Precedence is flags > environment (`KUBEDAG_*`) > config file > defaults, as the
deployment docs promise. The merged document is validated at start, against a JSON
Schema for its shape, then turned into the typed values of
`controller.settings.model`, whose rules it must also keep; every problem is reported
at once naming the file and the field (`executor.qps: must be > 0`), so a typo in a
ConfigMap fails the rollout at once instead of being silently ignored.

Also here: the one resolution of the database URL that every command uses.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from controller.base.durations import DurationError, parse_duration
from controller.notifications.settings import SCHEMA as NOTIFICATIONS_SCHEMA
from controller.notifications.settings import (
    NotificationSettings,
    NotificationSettingsError,
    parse_settings,
)
from controller.settings.model import (
    Config,
    ConfigError,
    ExecutorConfig,
    GitConfig,
    LeaderElectionConfig,
    rule_problems,
)


def duration_setting(value: object, *, field_name: str) -> float:
    """Seconds in a duration setting (the grammar of :mod:`controller.base.durations`)."""
    try:
        return parse_duration(value)
    except DurationError as error:
        raise ConfigError(f"{field_name}: {error}") from None


def database_url_for(config: Config) -> str:
    """The configured database, else the embedded SQLite file in the data directory.

    The one resolution every command uses: `--database-url`, else
    $KUBEDAG_DATABASE_URL, else the config file's databaseUrl, else kubedag.db in the
    data directory (`dataDir`, $KUBEDAG_DATA_DIR).
    """
    if config.database_url:
        return config.database_url
    return sqlite_url_in(config.data_dir)


def sqlite_url_in(data_dir: str | Path) -> str:
    """The embedded SQLite database of a data directory."""
    return f"sqlite:///{Path(data_dir).expanduser().resolve() / 'kubedag.db'}"


_DURATION_SCHEMA = {"type": ["string", "number"]}
_STR = {"type": "string"}
_OPT_STR = {"type": ["string", "null"]}

CONFIG_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "databaseUrl": _OPT_STR,
        "kubeconfig": _OPT_STR,
        "dataDir": _STR,
        "instance": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$"},
        "logFormat": {"enum": ["json", "text"]},
        "logLevel": {"enum": ["DEBUG", "INFO", "WARNING", "ERROR"]},
        "logStore": _OPT_STR,
        "http": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"bind": _STR, "port": {"type": "integer", "minimum": 0}},
        },
        "api": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"tokenFile": _OPT_STR, "protectReads": {"type": "boolean"}},
        },
        "git": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "url": _OPT_STR,
                "ref": _STR,
                "dagsPath": _STR,
                "interval": _DURATION_SCHEMA,
                "checkoutRoot": _OPT_STR,
                "tokenFile": _OPT_STR,
                "usernameFile": _OPT_STR,
                "passwordFile": _OPT_STR,
                "sshKeyFile": _OPT_STR,
                "knownHostsFile": _OPT_STR,
                "webhookSecretFile": _OPT_STR,
                "credentialsSecret": _OPT_STR,
                "credentialsSecretKey": _STR,
                "credentialsUsername": _STR,
            },
        },
        "executor": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "namespaces": {"type": "array", "items": _STR, "minItems": 1},
                "parallelism": {"type": "integer", "minimum": 1},
                "workers": {"type": "integer", "minimum": 1, "maximum": 256},
                "qps": {"type": ["number", "null"], "exclusiveMinimum": 0},
                "burst": {"type": "integer", "minimum": 1},
                "initImage": _STR,
                "podTemplateFile": _OPT_STR,
                "serviceAccount": _OPT_STR,
                "allowedSecrets": {"type": "array", "items": _STR},
                "controllerServiceAccount": _STR,
                "unschedulableTimeout": _DURATION_SCHEMA,
                "pendingTimeout": _DURATION_SCHEMA,
                "maxInfraRetries": {"type": "integer", "minimum": 0},
                "reconcileInterval": _DURATION_SCHEMA,
                "imagePullPolicy": {"enum": ["Always", "IfNotPresent", "Never", None]},
                "securityDefaults": {"type": "boolean"},
                "cleanup": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "deleteOnSuccess": {"type": "boolean"},
                        "deleteOnFailure": {"type": "boolean"},
                        "ttl": _DURATION_SCHEMA,
                        "maxDeferral": _DURATION_SCHEMA,
                    },
                },
            },
        },
        "retention": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"olderThan": _DURATION_SCHEMA, "interval": _DURATION_SCHEMA},
        },
        "notifications": NOTIFICATIONS_SCHEMA,
        "leaderElection": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "enabled": {"type": "boolean"},
                "namespace": _OPT_STR,
                "leaseName": _STR,
                "identity": _STR,
                "leaseDuration": _DURATION_SCHEMA,
                "renewDeadline": _DURATION_SCHEMA,
                "retryPeriod": _DURATION_SCHEMA,
            },
        },
    },
}

# Environment variables and the config-file path (dotted, camelCase) each one sets.
ENVIRONMENT: Mapping[str, str] = {
    "KUBEDAG_DATABASE_URL": "databaseUrl",
    "KUBECONFIG": "kubeconfig",
    "KUBEDAG_DATA_DIR": "dataDir",
    "KUBEDAG_INSTANCE": "instance",
    "KUBEDAG_LOG_FORMAT": "logFormat",
    "KUBEDAG_LOG_LEVEL": "logLevel",
    "KUBEDAG_LOG_STORE": "logStore",
    "KUBEDAG_HTTP_PORT": "http.port",
    "KUBEDAG_API_TOKEN_FILE": "api.tokenFile",
    "KUBEDAG_GIT_URL": "git.url",
    "KUBEDAG_GIT_REF": "git.ref",
    "KUBEDAG_GIT_DAGS_PATH": "git.dagsPath",
    "KUBEDAG_GIT_INTERVAL": "git.interval",
    "KUBEDAG_NAMESPACES": "executor.namespaces",
    "KUBEDAG_PARALLELISM": "executor.parallelism",
    "KUBEDAG_QPS": "executor.qps",
    "KUBEDAG_INIT_IMAGE": "executor.initImage",
    "KUBEDAG_POD_TEMPLATE_FILE": "executor.podTemplateFile",
    "KUBEDAG_LEADER_ELECTION": "leaderElection.enabled",
    "KUBEDAG_POD_NAME": "leaderElection.identity",
    "KUBEDAG_POD_NAMESPACE": "leaderElection.namespace",
}

_INTEGER_PATHS = {"http.port", "executor.parallelism"}
_NUMBER_PATHS = {"executor.qps"}
_BOOLEAN_PATHS = {"leaderElection.enabled"}
_LIST_PATHS = {"executor.namespaces"}


def _coerce(path: str, raw: str) -> Any:
    try:
        if path in _INTEGER_PATHS:
            return int(raw)
        if path in _NUMBER_PATHS:
            return float(raw)
    except ValueError as error:
        raise ConfigError(f"{path}: {raw!r} is not a number") from error
    if path in _BOOLEAN_PATHS:
        if raw.lower() not in {"true", "false", "1", "0", "yes", "no"}:
            raise ConfigError(f"{path}: {raw!r} is not a boolean")
        return raw.lower() in {"true", "1", "yes"}
    if path in _LIST_PATHS:
        return [part.strip() for part in raw.split(",") if part.strip()]
    return raw


def _set_path(document: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = document
    for parent in parents:
        node = node.setdefault(parent, {})
    node[leaf] = value


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the config file: {error.strerror}") from error
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from error
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: the config file must be a mapping")
    return document


def load_config(
    *,
    path: str | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Merge file, environment and flag overrides (dotted camelCase paths) and validate."""
    env = os.environ if environ is None else environ
    file_path = path or env.get("KUBEDAG_CONFIG")
    document = _read_file(Path(file_path)) if file_path else {}
    for variable, dotted in ENVIRONMENT.items():
        if variable in env and env[variable] != "":
            _set_path(document, dotted, _coerce(dotted, env[variable]))
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_path(document, dotted, value)
    errors = sorted(
        jsonschema.Draft202012Validator(CONFIG_SCHEMA).iter_errors(document),
        key=lambda e: list(e.absolute_path),
    )
    if errors:
        lines = [
            f"{'.'.join(str(p) for p in e.absolute_path) or '(top level)'}: {e.message}"
            for e in errors
        ]
        raise _invalid(file_path, lines)
    try:
        config = _build(document)
    except ConfigError as error:  # a duration or notification setting
        raise _invalid(file_path, [str(error)]) from None
    problems = rule_problems(config)
    if problems:
        raise _invalid(file_path, problems)
    return config


def _invalid(file_path: str | None, problems: list[str]) -> ConfigError:
    where = f" in {file_path}" if file_path else ""
    return ConfigError(f"invalid configuration{where}:\n  " + "\n  ".join(problems))


def _build(doc: Mapping[str, Any]) -> Config:
    git = doc.get("git", {})
    executor = doc.get("executor", {})
    cleanup = executor.get("cleanup", {})
    leader = doc.get("leaderElection", {})
    http = doc.get("http", {})
    retention = doc.get("retention", {})
    base = Config()
    return Config(
        database_url=doc.get("databaseUrl"),
        kubeconfig=doc.get("kubeconfig"),
        data_dir=doc.get("dataDir", base.data_dir),
        instance=doc.get("instance", base.instance),
        log_format=doc.get("logFormat", base.log_format),
        log_level=doc.get("logLevel", base.log_level),
        log_store=doc.get("logStore"),
        http_bind=http.get("bind", base.http_bind),
        http_port=http.get("port", base.http_port),
        api_token_file=doc.get("api", {}).get("tokenFile"),
        api_protect_reads=doc.get("api", {}).get("protectReads", False),
        retention_older_than_seconds=None
        if retention.get("olderThan") is None
        else duration_setting(retention["olderThan"], field_name="retention.olderThan"),
        retention_interval_seconds=duration_setting(
            retention.get("interval", base.retention_interval_seconds),
            field_name="retention.interval",
        ),
        notifications=_notifications(doc.get("notifications", {})),
        git=GitConfig(
            url=git.get("url"),
            ref=git.get("ref", "main"),
            dags_path=git.get("dagsPath", "."),
            interval_seconds=duration_setting(git.get("interval", 30), field_name="git.interval"),
            checkout_root=git.get("checkoutRoot"),
            token_file=git.get("tokenFile"),
            username_file=git.get("usernameFile"),
            password_file=git.get("passwordFile"),
            ssh_key_file=git.get("sshKeyFile"),
            known_hosts_file=git.get("knownHostsFile"),
            webhook_secret_file=git.get("webhookSecretFile"),
            credentials_secret=git.get("credentialsSecret"),
            credentials_secret_key=git.get("credentialsSecretKey", "token"),
            credentials_username=git.get("credentialsUsername", GitConfig.credentials_username),
        ),
        executor=_executor(executor, cleanup),
        leader_election=_leader(leader),
    )


def _executor(executor: Mapping[str, Any], cleanup: Mapping[str, Any]) -> ExecutorConfig:
    base = ExecutorConfig()
    return ExecutorConfig(
        namespaces=tuple(executor.get("namespaces", base.namespaces)),
        parallelism=executor.get("parallelism", base.parallelism),
        workers=executor.get("workers", base.workers),
        qps=executor.get("qps", base.qps),
        burst=executor.get("burst", base.burst),
        init_image=executor.get("initImage", base.init_image),
        pod_template_file=executor.get("podTemplateFile"),
        service_account=executor.get("serviceAccount"),
        allowed_secrets=tuple(executor.get("allowedSecrets", base.allowed_secrets)),
        controller_service_account=executor.get(
            "controllerServiceAccount", base.controller_service_account
        ),
        unschedulable_timeout_seconds=duration_setting(
            executor.get("unschedulableTimeout", base.unschedulable_timeout_seconds),
            field_name="executor.unschedulableTimeout",
        ),
        pending_timeout_seconds=duration_setting(
            executor.get("pendingTimeout", base.pending_timeout_seconds),
            field_name="executor.pendingTimeout",
        ),
        max_infra_retries=executor.get("maxInfraRetries", base.max_infra_retries),
        reconcile_interval_seconds=duration_setting(
            executor.get("reconcileInterval", base.reconcile_interval_seconds),
            field_name="executor.reconcileInterval",
        ),
        delete_on_success=cleanup.get("deleteOnSuccess", base.delete_on_success),
        delete_on_failure=cleanup.get("deleteOnFailure", base.delete_on_failure),
        finished_pod_ttl_seconds=duration_setting(
            cleanup.get("ttl", base.finished_pod_ttl_seconds), field_name="executor.cleanup.ttl"
        ),
        cleanup_max_deferral_seconds=duration_setting(
            cleanup.get("maxDeferral", base.cleanup_max_deferral_seconds),
            field_name="executor.cleanup.maxDeferral",
        ),
        image_pull_policy=executor.get("imagePullPolicy"),
        security_defaults=executor.get("securityDefaults", base.security_defaults),
    )


def _notifications(doc: Mapping[str, Any]) -> NotificationSettings:
    try:
        return parse_settings(doc)
    except NotificationSettingsError as error:
        raise ConfigError(str(error)) from None


def _leader(leader: Mapping[str, Any]) -> LeaderElectionConfig:
    base = LeaderElectionConfig()
    return LeaderElectionConfig(
        enabled=leader.get("enabled", base.enabled),
        namespace=leader.get("namespace"),
        lease_name=leader.get("leaseName", base.lease_name),
        identity=leader.get("identity", base.identity),
        lease_duration_seconds=duration_setting(
            leader.get("leaseDuration", base.lease_duration_seconds),
            field_name="leaderElection.leaseDuration",
        ),
        renew_deadline_seconds=duration_setting(
            leader.get("renewDeadline", base.renew_deadline_seconds),
            field_name="leaderElection.renewDeadline",
        ),
        retry_period_seconds=duration_setting(
            leader.get("retryPeriod", base.retry_period_seconds),
            field_name="leaderElection.retryPeriod",
        ),
    )
