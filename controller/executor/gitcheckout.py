"""The `git-checkout` init container: the repository at exactly the run's commit.

A run is pinned to one commit, so every pod of the run must see the same tree even if
the branch moved since. The init container therefore fetches the commit by SHA (shallow,
so a large history costs nothing) and checks it out detached, then verifies HEAD. Some
servers refuse to serve a commit that is not a branch tip; for them the script falls
back to a full fetch of the branches and tags and checks the SHA out from there.

Two traps are avoided by construction:
- The script is a constant. Every variable part (URL, SHA, paths) reaches it through
  environment variables, so no text from a DAG or the config is ever parsed by a shell.
- The script can run again over its own result (a node restarting a pod's sandbox
  re-runs init containers on the same emptyDir): it fetches from the URL without
  adding a remote and force-checks-out, so a second run converges instead of failing.
- Credentials never appear in the URL, the args or a plain env value. The password comes
  from a Secret through `secretKeyRef`, and git reads it through a credential helper
  (configured with GIT_CONFIG_COUNT inside the script) that expands the variable only
  when git asks for it, so git never prints it and it never lands in `.git/config`.

Pure: builds a container as a plain dict in the API's camelCase JSON shape.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

CONTAINER_NAME = "git-checkout"

REPO_URL_ENV = "KUBEDAG_REPO_URL"
REVISION_ENV = "KUBEDAG_REVISION"
CHECKOUT_DIR_ENV = "KUBEDAG_CHECKOUT_DIR"
USERNAME_ENV = "KUBEDAG_GIT_USERNAME"
PASSWORD_ENV = "KUBEDAG_GIT_PASSWORD"  # noqa: S105 - a variable name, not a password

_SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")

CHECKOUT_SCRIPT = r"""set -eu
: "${KUBEDAG_REPO_URL:?}" "${KUBEDAG_REVISION:?}" "${KUBEDAG_CHECKOUT_DIR:?}"
export GIT_TERMINAL_PROMPT=0
if [ -n "${KUBEDAG_GIT_PASSWORD:-}" ]; then
  export GIT_CONFIG_COUNT=1
  export GIT_CONFIG_KEY_0=credential.helper
  export GIT_CONFIG_VALUE_0='!f() {
    test "$1" = get || exit 0
    printf "username=%s\n" "${KUBEDAG_GIT_USERNAME:-git}"
    printf "password=%s\n" "$KUBEDAG_GIT_PASSWORD"
  }; f'
fi
mkdir -p "$KUBEDAG_CHECKOUT_DIR"
cd "$KUBEDAG_CHECKOUT_DIR"
git -c init.defaultBranch=kubedag init -q .
if git fetch -q --depth 1 "$KUBEDAG_REPO_URL" "$KUBEDAG_REVISION"; then
  git checkout -q -f --detach FETCH_HEAD
else
  echo "kubedag: fetching the commit by SHA was refused; fetching all branches and tags" >&2
  git fetch -q --tags "$KUBEDAG_REPO_URL" '+refs/heads/*:refs/remotes/origin/*'
  git checkout -q -f --detach "$KUBEDAG_REVISION^{commit}"
fi
head="$(git rev-parse HEAD)"
if [ "$head" != "$KUBEDAG_REVISION" ]; then
  echo "kubedag: checked out $head, expected $KUBEDAG_REVISION" >&2
  exit 1
fi
echo "kubedag: checked out $head"
"""
"""Run with `sh -c`; reads only the KUBEDAG_* variables named above."""


def is_full_sha(revision: str) -> bool:
    """A full SHA-1 or SHA-256 commit id: abbreviations and ref names are ambiguous."""
    return _SHA.match(revision) is not None


def checkout_env(
    *,
    repo_url: str,
    revision: str,
    checkout_dir: str,
    secret_name: str | None,
    secret_key: str,
    username: str,
) -> list[dict[str, Any]]:
    """The init container's env: the script's inputs, the password only as a reference."""
    if not is_full_sha(revision):
        raise ValueError(f"revision must be a full lowercase commit SHA, got {revision!r}")
    env: list[dict[str, Any]] = [
        {"name": REPO_URL_ENV, "value": repo_url},
        {"name": REVISION_ENV, "value": revision},
        {"name": CHECKOUT_DIR_ENV, "value": checkout_dir},
    ]
    if secret_name is not None:
        env.append({"name": USERNAME_ENV, "value": username})
        env.append(
            {
                "name": PASSWORD_ENV,
                "valueFrom": {"secretKeyRef": {"name": secret_name, "key": secret_key}},
            }
        )
    return env


def checkout_container(
    *,
    image: str,
    env: list[dict[str, Any]],
    workspace_mount_path: str,
    resources: Mapping[str, Any],
    security_context: Mapping[str, Any] | None,
    image_pull_policy: str | None,
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": image,
        "command": ["sh", "-c", CHECKOUT_SCRIPT],
        "env": env,
        "volumeMounts": [{"name": "workspace", "mountPath": workspace_mount_path}],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if resources:
        container["resources"] = dict(resources)
    if security_context is not None:
        container["securityContext"] = dict(security_context)
    if image_pull_policy is not None:
        container["imagePullPolicy"] = image_pull_policy
    return container
