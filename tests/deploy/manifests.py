"""Rendering the kustomize manifests for tests, with the kubectl built for the local cluster."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from controller.devcluster.layout import kubernetes_bin_dir

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
KUSTOMIZATIONS = ("base", "overlays/with-postgres", "overlays/local-real-node")


def kubectl() -> str:
    return str(kubernetes_bin_dir() / "kubectl")


def render(kustomization: str) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize` renders from manifests/<kustomization>."""
    rendered = subprocess.run(
        [kubectl(), "kustomize", str(MANIFESTS / kustomization)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def for_local_server(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Adapt to the local control plane's Kubernetes 1.20, which predates policy/v1.

    PodDisruptionBudget is served as policy/v1beta1 there; its fields used here
    (minAvailable, selector) mean the same in both versions. Nothing else changes.
    """
    adapted = []
    for obj in objects:
        if obj["kind"] == "PodDisruptionBudget" and obj["apiVersion"] == "policy/v1":
            obj = {**obj, "apiVersion": "policy/v1beta1"}
        adapted.append(obj)
    return adapted
