"""Running task instances as Kubernetes pods."""
