"""Verify and read push webhooks from GitHub, GitLab and Gitea.

A webhook endpoint is reachable by anyone who can reach the controller, so nothing in a
request is trusted before its secret checks out: GitHub and Gitea sign the raw body with
HMAC-SHA256, GitLab sends the secret itself. Every comparison is constant-time
(`hmac.compare_digest`), so response timing reveals nothing about the secret. Gitea also
sends GitHub's headers for compatibility, which is why it is recognised first.

Pure functions over headers and bytes: the HTTP server stays a thin shell around them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from controller.gitsync.settings import is_pinned_sha

_SHA_RE = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_NULL_SHA_RE = re.compile(r"0{40}|0{64}")

WebhookErrorKind = Literal["unauthenticated", "not-push", "malformed"]


class WebhookError(Exception):
    """A request that is not a verified push; `reason` says why, for the HTTP response.

    `kind` separates a sender that failed the secret check ("unauthenticated") from a
    genuine sender whose request is another event, such as a ping ("not-push"), or a
    push payload that cannot be read ("malformed"): they deserve different answers.
    """

    def __init__(self, reason: str, *, kind: WebhookErrorKind = "unauthenticated") -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind: WebhookErrorKind = kind


@dataclass(frozen=True)
class PushEvent:
    """A verified push: who sent it, which ref moved, and the commit it moved to."""

    provider: str
    ref: str
    after: str

    @property
    def deleted(self) -> bool:
        """The push deleted the ref (providers send an all-zero `after`)."""
        return _NULL_SHA_RE.fullmatch(self.after) is not None


def verify_push(headers: Mapping[str, str], body: bytes, *, secret: bytes) -> PushEvent:
    """Check the request's secret or signature, then parse its push payload."""
    if not secret:
        raise ValueError("a webhook secret must not be empty")
    lowered = {name.lower(): value for name, value in headers.items()}
    if "x-gitea-event" in lowered or "x-gitea-signature" in lowered:
        provider = "gitea"
        _check_hmac(lowered, "X-Gitea-Signature", body, secret=secret, prefix="")
        _require_event(lowered, "X-Gitea-Event", {"push"})
    elif "x-gitlab-event" in lowered or "x-gitlab-token" in lowered:
        provider = "gitlab"
        _check_token(lowered, "X-Gitlab-Token", secret=secret)
        _require_event(lowered, "X-Gitlab-Event", {"Push Hook", "Tag Push Hook"})
    elif "x-github-event" in lowered or "x-hub-signature-256" in lowered:
        provider = "github"
        _check_hmac(lowered, "X-Hub-Signature-256", body, secret=secret, prefix="sha256=")
        _require_event(lowered, "X-GitHub-Event", {"push"})
    else:
        raise WebhookError(
            "no signature header of a known provider "
            "(X-Hub-Signature-256, X-Gitlab-Token, X-Gitea-Signature)"
        )
    ref, after = _parse_payload(body)
    return PushEvent(provider=provider, ref=ref, after=after)


def push_concerns_ref(event: PushEvent, ref: str) -> bool:
    """Whether the push moved the configured ref (a branch or tag name, or a full ref).

    A pinned commit SHA never moves, so no push concerns it.
    """
    if is_pinned_sha(ref):
        return False
    if ref.startswith("refs/"):
        return event.ref == ref
    return event.ref in (f"refs/heads/{ref}", f"refs/tags/{ref}")


def _check_hmac(
    headers: Mapping[str, str], name: str, body: bytes, *, secret: bytes, prefix: str
) -> None:
    given = headers.get(name.lower())
    if not given:
        raise WebhookError(f"missing {name} header")
    expected = prefix + hmac.new(secret, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(given.strip().lower().encode(), expected.encode()):
        raise WebhookError(f"{name} does not match the body signed with the webhook secret")


def _check_token(headers: Mapping[str, str], name: str, *, secret: bytes) -> None:
    given = headers.get(name.lower())
    if not given:
        raise WebhookError(f"missing {name} header")
    if not hmac.compare_digest(given.encode(), secret):
        raise WebhookError(f"{name} does not match the webhook secret")


def _require_event(headers: Mapping[str, str], name: str, accepted: set[str]) -> None:
    event = headers.get(name.lower())
    if event is not None and event not in accepted:
        raise WebhookError(f"not a push event ({name}: {event})", kind="not-push")


def _parse_payload(body: bytes) -> tuple[str, str]:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WebhookError(f"the body is not JSON: {exc}", kind="malformed") from exc
    if not isinstance(payload, dict):
        raise WebhookError("the body is not a JSON object", kind="malformed")
    ref, after = payload.get("ref"), payload.get("after")
    if not isinstance(ref, str) or not ref.startswith("refs/"):
        raise WebhookError("the push payload has no 'ref' like refs/heads/NAME", kind="malformed")
    if not isinstance(after, str) or _SHA_RE.fullmatch(after) is None:
        raise WebhookError("the push payload has no 'after' commit SHA", kind="malformed")
    return ref, after
