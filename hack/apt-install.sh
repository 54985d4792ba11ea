#!/usr/bin/env bash
# Installs Debian packages the Makefile needs on a fresh machine, or says what to do.
set -euo pipefail
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
else
  echo "error: please install these packages first: $*" >&2
  exit 1
fi
