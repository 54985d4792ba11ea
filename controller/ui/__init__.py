"""The web UI's static files, served by the controller's HTTP server under ``/ui/``.

The UI is plain HTML, CSS and JavaScript modules that talk to the JSON API; nothing is
built at install time, so the files in ``static/`` are what the browser gets. They are
read once, when the server starts, into a table keyed by URL path: a request can only
ever name one of those files, so no path it sends (``..``, encoded slashes, symlinks)
reaches the file system.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib.resources import files
from importlib.resources.abc import Traversable

PREFIX = "/ui/"

_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}

# The pages build their DOM from API data with textContent only; this policy makes an
# injected script or a third-party resource fail even if that rule were broken.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class Reply:
    """An API answer; a body that is an iterator is streamed as it is produced."""

    status: int
    body: bytes | Iterator[bytes]
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)


# Gets the method, the request target (path and query), the headers and the body, and
# answers a Reply, or None when the path is not the API's.
ApiHandler = Callable[[str, str, Mapping[str, str], bytes], Reply | None]


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str


def load_assets() -> dict[str, Asset]:
    """Every static file by the URL path it is served at; ``/ui/`` is the index page."""
    assets: dict[str, Asset] = {}
    _collect(files("controller.ui") / "static", "", assets)
    assets[PREFIX] = assets[PREFIX + "index.html"]
    return assets


def _collect(folder: Traversable, prefix: str, assets: dict[str, Asset]) -> None:
    for entry in folder.iterdir():
        if entry.is_dir():
            _collect(entry, f"{prefix}{entry.name}/", assets)
            continue
        suffix = entry.name[entry.name.rfind(".") :]
        content_type = _CONTENT_TYPES.get(suffix)
        if content_type is not None:
            assets[f"{PREFIX}{prefix}{entry.name}"] = Asset(entry.read_bytes(), content_type)
