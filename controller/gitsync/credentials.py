"""Hand credentials to git without writing them anywhere a reader could find them.

The easy ways leak: a token in the URL lands in `.git/config`, in `ps` output and in
every error message git prints; `-c http.extraHeader=...` puts it in process arguments;
a host's `credential.helper=store` copies it to disk. Instead git gets only *paths*:
GIT_ASKPASS names a tiny script that prints the contents of the mounted Secret files
when git asks for a user name or password. Configured credential helpers are reset for
our git calls so nothing is cached, and GIT_TERMINAL_PROMPT=0 keeps git from waiting on
a prompt nobody answers.

Error text still passes through `scrub`, which removes URL userinfo and any secret file
contents, as a second line of defence.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from controller.gitsync.settings import HttpsAuth

_USERINFO_RE = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@]+@")

# POSIX sh, no bashisms: init images and slim controller images often lack bash.
_ASKPASS_SCRIPT = """#!/bin/sh
# Prints a credential from a mounted file when git asks; git passes its prompt as $1.
case "$1" in
  Username*)
    if [ -n "$KUBEDAG_GIT_USERNAME_FILE" ]; then
      exec cat -- "$KUBEDAG_GIT_USERNAME_FILE"
    fi
    printf '%s\\n' "$KUBEDAG_GIT_USERNAME"
    ;;
  *)
    exec cat -- "$KUBEDAG_GIT_PASSWORD_FILE"
    ;;
esac
"""


def redact_url_userinfo(text: str) -> str:
    """Replace the `user:password@` part of every URL in `text` with `***@`."""
    return _USERINFO_RE.sub(r"\g<scheme>***@", text)


class GitCredentials:
    """The environment that lets git authenticate, and the scrubber for its error text."""

    def __init__(self, auth: HttpsAuth | None, *, state_dir: Path) -> None:
        self._auth = auth
        self._state_dir = state_dir

    def env(self) -> dict[str, str]:
        """Environment variables for git; rebuild it for each sync so rotated Secrets apply."""
        env = {
            "GIT_TERMINAL_PROMPT": "0",
            # An empty credential.helper resets the list, so no helper stores our token.
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "credential.helper",
            "GIT_CONFIG_VALUE_0": "",
        }
        if self._auth is not None:
            env.update(self._https_env(self._auth))
        return env

    def scrub(self, text: str) -> str:
        """`text` without URL userinfo and without the contents of any secret file."""
        text = redact_url_userinfo(text)
        for secret in self._secrets():
            text = text.replace(secret, "***")
        return text

    def _secrets(self) -> list[str]:
        auth = self._auth
        if auth is None:
            return []
        secrets = []
        for path in (auth.token_file, auth.password_file):
            if path is None:
                continue
            try:
                value = path.read_text(encoding="utf-8").strip()
            except OSError:
                continue
            # Scrubbing a one-character "secret" would garble every message.
            if len(value) >= 4:
                secrets.append(value)
        return secrets

    def _https_env(self, auth: HttpsAuth) -> dict[str, str]:
        script = self._state_dir / "askpass.sh"
        self._state_dir.mkdir(parents=True, exist_ok=True)
        if not script.exists() or script.read_text(encoding="utf-8") != _ASKPASS_SCRIPT:
            tmp = script.with_suffix(".tmp")
            tmp.write_text(_ASKPASS_SCRIPT, encoding="utf-8")
            tmp.chmod(0o700)
            os.replace(tmp, script)
        env = {"GIT_ASKPASS": str(script)}
        if auth.token_file is not None:
            env["KUBEDAG_GIT_USERNAME"] = auth.token_username
            env["KUBEDAG_GIT_PASSWORD_FILE"] = str(auth.token_file.resolve())
        else:
            assert auth.username_file is not None
            assert auth.password_file is not None
            env["KUBEDAG_GIT_USERNAME_FILE"] = str(auth.username_file.resolve())
            env["KUBEDAG_GIT_PASSWORD_FILE"] = str(auth.password_file.resolve())
        return env
