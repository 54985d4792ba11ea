"""A local Kubernetes control plane (etcd and the real Kubernetes components) for
development and tests, on machines where kind, k3d and minikube cannot run."""

from controller.devcluster.cluster import LocalCluster
from controller.devcluster.layout import ClusterConfig
from controller.devcluster.readiness import ClusterError

__all__ = ["ClusterConfig", "ClusterError", "LocalCluster"]
