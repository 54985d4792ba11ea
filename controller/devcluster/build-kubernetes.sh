#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and kubelet from
# Debian bookworm's `kubernetes` source package, once, into a cache directory.
#
# Why from Debian's source: no prebuilt Kubernetes binary can be downloaded on the
# machines this project is developed on, but Debian's package archive can be reached,
# and its kubernetes source (1.20, with vendored modules) builds with Debian's Go.
# Only the binaries are kept; the source tree and Go cache are removed afterwards.
set -euo pipefail

cache_dir="${KUBEDAG_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kubedag}"
bin_dir="$cache_dir/kubernetes/bin"
binaries=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet)

have_all() {
  for b in "${binaries[@]}"; do [ -x "$bin_dir/$b" ] || return 1; done
  command -v etcd >/dev/null && command -v etcdctl >/dev/null && command -v unshare >/dev/null
}

say() { echo "[build-kubernetes] $*"; }

if have_all; then
  echo "kubernetes binaries already built in $bin_dir"
  exit 0
fi
# Two test sessions (or a test run and `dev-cluster up`) can start at once; a second build
# would delete the first one's source tree under it. One builds, the other waits and reuses.
mkdir -p "$cache_dir/kubernetes"
exec 9>"$cache_dir/kubernetes/.build.lock"
if ! flock -n 9; then
  say "another build of the binaries is running; waiting for it"
  flock 9
fi
if have_all; then
  echo "kubernetes binaries already built in $bin_dir"
  exit 0
fi
started=$(date +%s)

if [ ! -r /etc/debian_version ]; then
  echo "error: building the local control plane needs Debian (bookworm)." >&2
  echo "       Point kubedag at any other cluster with KUBECONFIG instead (kind, k3d, minikube, a real one)." >&2
  exit 2
fi
if [ "$(id -u)" != 0 ]; then
  echo "error: the first build installs Debian packages and must run as root." >&2
  echo "       Install as root: apt-get install etcd-server etcd-client golang-go rsync jq dpkg-dev util-linux git," >&2
  echo "       then rerun; or point kubedag at another cluster with KUBECONFIG." >&2
  exit 2
fi

export DEBIAN_FRONTEND=noninteractive
if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
  say "enabling deb-src for bookworm"
  cat > /etc/apt/sources.list.d/kubedag-deb-src.sources <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
say "apt-get update"
apt-get update -qq
say "installing build and runtime packages (etcd-server, etcd-client, golang-go, rsync, jq, dpkg-dev, util-linux, git)"
apt-get install -y -qq etcd-server etcd-client golang-go rsync jq dpkg-dev util-linux git >/dev/null

work="$cache_dir/kubernetes/src"
rm -rf "$work"
mkdir -p "$work" "$bin_dir"
cd "$work"
say "fetching the kubernetes source package"
apt-get source -qq --download-only kubernetes >/dev/null
dpkg-source --no-check -x ./kubernetes_*.dsc tree >/dev/null
src="$work/tree"

say "building ${binaries[*]} (several minutes on a 2-core machine)"
mkdir -p "$src/.go/src/k8s.io"
ln -sfn "$src" "$src/.go/src/k8s.io/kubernetes"
cd "$src/.go/src/k8s.io/kubernetes"
# GOPATH mode, as Debian's own debian/rules builds it: the vendored tree is the module set.
export GOPATH="$src/.go" GO111MODULE=off CGO_ENABLED=0 GOCACHE="$work/gocache"
whats=""
for b in "${binaries[@]}"; do whats="$whats cmd/$b"; done
( while sleep 30; do say "still building... ($(date +%T))"; done ) &
ticker=$!
trap 'kill $ticker 2>/dev/null || true' EXIT
make WHAT="${whats# }" KUBE_BUILD_PLATFORMS=linux/amd64 >"$work/build.log" 2>&1 || {
  tail -n 40 "$work/build.log" >&2
  echo "error: the kubernetes build failed; full log in $work/build.log" >&2
  exit 1
}
for b in "${binaries[@]}"; do
  found=$(find "$src/_output" -type f -name "$b" -perm -u+x | head -n 1)
  [ -n "$found" ] || { echo "error: $b was not built" >&2; exit 1; }
  install -m 0755 "$found" "$bin_dir/$b"
done
cd /
rm -rf "$work"
say "done in $(( $(date +%s) - started ))s: $(ls "$bin_dir" | tr '\n' ' ')in $bin_dir"
