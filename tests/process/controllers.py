"""Helpers for controller tests: a DAG repository to push to, configs, HTTP and waiting."""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from prometheus_client.parser import text_string_to_metric_families

from controller.settings.loading import load_config
from controller.settings.model import Config
from tests.gitsync.conftest import Remote

T = TypeVar("T")


def controller_config(
    *,
    remote: Remote,
    data_dir: Path,
    database_url: str,
    kubeconfig: Path,
    namespace: str,
    interval: str = "1s",
    webhook_secret_file: Path | None = None,
    instance: str | None = None,
    max_infra_retries: int | None = None,
) -> Config:
    return load_config(
        path=None,
        environ={},
        overrides={
            "executor.maxInfraRetries": max_infra_retries,
            "kubeconfig": str(kubeconfig),
            "dataDir": str(data_dir),
            "databaseUrl": database_url,
            "instance": instance or f"t{uuid.uuid4().hex[:8]}",
            "http.bind": "127.0.0.1",
            "http.port": 0,
            "git.url": remote.url,
            "git.dagsPath": "dags",
            "git.interval": interval,
            "git.webhookSecretFile": str(webhook_secret_file) if webhook_secret_file else None,
            "executor.namespaces": [namespace],
            "leaderElection.enabled": False,
        },
    )


def wait_for(check: Callable[[], T | None], *, timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found is not None and found is not False:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.1)


def http_get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def github_push(port: int, *, secret: bytes, after: str, ref: str = "refs/heads/main") -> int:
    body = json.dumps({"ref": ref, "after": after, "before": "0" * 40}).encode()
    signature = hmac.new(secret, body, hashlib.sha256).hexdigest()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/webhook",
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": "push",
            "X-Hub-Signature-256": f"sha256={signature}",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def scrape(port: int) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Every sample of /metrics, parsed by prometheus-client: name -> labels -> value."""
    status, text = http_get(port, "/metrics")
    assert status == 200
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[labels] = sample.value
    return samples


def stop_gracefully(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM a controller process as Kubernetes would, then kill it if it hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
