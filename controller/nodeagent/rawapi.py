"""A thin JSON client for the few API calls the node agent makes, many times a second.

The generated kubernetes client validates and converts every request and response
through model classes, which costs more CPU than the HTTP call itself; at hundreds of
pod transitions per second that is the bottleneck. The agent works on plain dicts over
one pooled urllib3 connection set instead, with the credentials of a kubeconfig (or
the in-cluster service account), and a timeout on every call.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import kubernetes.client
import kubernetes.config
import urllib3

JSON = dict[str, Any]
TIMEOUT = urllib3.Timeout(connect=5.0, read=30.0)


@dataclass
class ApiError(Exception):
    """A non-2xx answer of the apiserver (status 0: no answer at all), with its message."""

    status: int
    reason: str

    def __str__(self) -> str:
        return f"{self.status}: {self.reason}"


class RawApi:
    def __init__(self, *, kubeconfig: Path | None, pool_size: int = 16) -> None:
        cfg = kubernetes.client.Configuration()
        if kubeconfig is None:
            kubernetes.config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        else:
            kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(kubeconfig), client_configuration=cfg
            )
        self.host = cfg.host.rstrip("/")
        self._headers = {"Accept": "application/json", "User-Agent": "kubedag-node-agent"}
        auth = cfg.get_api_key_with_prefix("authorization") or cfg.get_api_key_with_prefix(
            "BearerToken"
        )
        if auth:
            self._headers["Authorization"] = auth
        context = ssl.create_default_context(cafile=cfg.ssl_ca_cert) if cfg.verify_ssl else None
        if context is not None and cfg.cert_file:
            context.load_cert_chain(cfg.cert_file, cfg.key_file)
        self._pool = urllib3.PoolManager(
            num_pools=4,
            maxsize=pool_size,
            block=True,
            ssl_context=context,
            cert_reqs="CERT_REQUIRED" if context else "CERT_NONE",
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        body: JSON | None = None,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> JSON:
        url = self.host + path + (f"?{urlencode(query)}" if query else "")
        headers = dict(self._headers)
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body).encode()
        try:
            response = self._pool.request(
                method, url, body=data, headers=headers, timeout=TIMEOUT, retries=False
            )
        except urllib3.exceptions.HTTPError as error:
            raise ApiError(0, f"apiserver unreachable: {error}") from None
        if response.status >= 300:
            raise _error(response.status, response.data)
        result: JSON = json.loads(response.data) if response.data else {}
        return result

    def watch(
        self, path: str, *, query: dict[str, str], timeout_seconds: int = 240
    ) -> Iterator[JSON]:
        """Yield watch events; ends when the server closes the stream."""
        params = {**query, "watch": "true", "timeoutSeconds": str(timeout_seconds)}
        url = f"{self.host}{path}?{urlencode(params)}"
        try:
            response = self._pool.request(
                "GET",
                url,
                headers=self._headers,
                preload_content=False,
                retries=False,
                timeout=urllib3.Timeout(connect=5.0, read=timeout_seconds + 30.0),
            )
        except urllib3.exceptions.HTTPError as error:
            raise ApiError(0, f"apiserver unreachable: {error}") from None
        try:
            if response.status >= 300:
                raise _error(response.status, response.read())
            buffer = b""
            try:
                for chunk in response.stream(65536):
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if line.strip():
                            yield json.loads(line)
            except urllib3.exceptions.HTTPError as error:
                raise ApiError(0, f"watch stream broken: {error}") from None
        finally:
            response.release_conn()

    def patch_status(self, *, namespace: str, name: str, status: JSON) -> None:
        self.request(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/pods/{name}/status",
            body={"status": status},
            content_type="application/strategic-merge-patch+json",
        )

    def delete_pod(self, *, namespace: str, name: str, uid: str) -> None:
        """Delete with grace 0, only the incarnation we ran (uid precondition)."""
        try:
            self.request(
                "DELETE",
                f"/api/v1/namespaces/{namespace}/pods/{name}",
                body={"gracePeriodSeconds": 0, "preconditions": {"uid": uid}},
            )
        except ApiError as error:
            if error.status not in (404, 409):
                raise


def _error(status: int, data: bytes) -> ApiError:
    try:
        reason = json.loads(data).get("message", "")
    except ValueError:
        reason = data[:200].decode(errors="replace")
    return ApiError(status, reason)
