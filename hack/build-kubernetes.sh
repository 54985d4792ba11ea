#!/usr/bin/env bash
# The build lives inside the Python package (so `kubedag dev-cluster up` finds it when
# kubedag is installed from a wheel); this entry point keeps `hack/` the place a
# contributor looks for it.
exec "$(dirname "$0")/../controller/devcluster/build-kubernetes.sh" "$@"
