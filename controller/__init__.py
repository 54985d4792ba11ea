"""kubedag: a declarative GitOps controller for Kubernetes driven by a git repo of YAML DAGs."""

__version__ = "0.1.0"
