"""kubedag: a declarative GitOps controller for Kubernetes driven by a git repository of YAML DAGs."""

__version__ = "0.1.0"
