"""A commit's web page on the forge that hosts the repository, when it is a known one.

Pure: from the configured git URL (any of the https, ssh and scp-like spellings) and a
commit, the address of that commit on GitHub, GitLab, Codeberg or Bitbucket, or None.
The address is built from the host and path only, so credentials written into the URL
(``https://user:token@host/...``) never reach a page.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_COMMIT_PATHS = {
    "github.com": "{base}/commit/{sha}",
    "gitlab.com": "{base}/-/commit/{sha}",
    "codeberg.org": "{base}/commit/{sha}",
    "bitbucket.org": "{base}/commits/{sha}",
}
_SCP_LIKE = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>[^/].*)$")
_SHA = re.compile(r"^[0-9a-f]{7,64}$")
_PATH = re.compile(r"^[A-Za-z0-9._~-]+(?:/[A-Za-z0-9._~-]+)+$")


def commit_url(repo_url: str | None, revision: str | None) -> str | None:
    if not repo_url or not revision or not _SHA.match(revision):
        return None
    host, path = _host_and_path(repo_url)
    if host is None or path is None:
        return None
    template = _COMMIT_PATHS.get(host.lower())
    path = path.strip("/").removesuffix(".git")
    if template is None or not _PATH.match(path):
        return None
    return template.format(base=f"https://{host.lower()}/{path}", sha=revision)


def _host_and_path(repo_url: str) -> tuple[str | None, str | None]:
    if "://" in repo_url:
        parts = urlsplit(repo_url)
        if parts.scheme not in ("https", "http", "ssh", "git"):
            return None, None
        return parts.hostname, parts.path
    match = _SCP_LIKE.match(repo_url)
    if match is None:
        return None, None
    return match["host"], match["path"]
