"""Push webhooks: only a request carrying the shared secret is believed."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from controller.gitsync.webhook import PushEvent, WebhookError, push_concerns_ref, verify_push

SECRET = b"s3cret-shared"
AFTER = "a" * 40
BODY = json.dumps({"ref": "refs/heads/main", "after": AFTER, "before": "b" * 40}).encode()


def _hex(body: bytes, secret: bytes = SECRET) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def github(body: bytes = BODY, secret: bytes = SECRET) -> dict[str, str]:
    return {"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + _hex(body, secret)}


def gitlab(token: bytes = SECRET) -> dict[str, str]:
    return {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": token.decode()}


def gitea(body: bytes = BODY, secret: bytes = SECRET) -> dict[str, str]:
    # Gitea also sends GitHub's headers; its own must be the ones checked.
    return {
        "X-Gitea-Event": "push",
        "X-Gitea-Signature": _hex(body, secret),
        "X-GitHub-Event": "push",
        "X-Hub-Signature-256": "sha256=" + _hex(body, secret),
    }


@pytest.mark.parametrize(
    ("headers", "provider"),
    [(github(), "github"), (gitlab(), "gitlab"), (gitea(), "gitea")],
)
def test_a_correctly_signed_push_is_accepted(headers: dict[str, str], provider: str) -> None:
    event = verify_push(headers, BODY, secret=SECRET)
    assert event == PushEvent(provider=provider, ref="refs/heads/main", after=AFTER)


def test_header_names_are_case_insensitive() -> None:
    headers = {name.lower(): value for name, value in github().items()}
    assert verify_push(headers, BODY, secret=SECRET).provider == "github"


@pytest.mark.parametrize(
    ("headers", "header"),
    [
        (github(secret=b"wrong"), "X-Hub-Signature-256"),
        (gitlab(token=b"wrong"), "X-Gitlab-Token"),
        (gitea(secret=b"wrong"), "X-Gitea-Signature"),
    ],
)
def test_a_bad_signature_is_refused(headers: dict[str, str], header: str) -> None:
    with pytest.raises(WebhookError) as caught:
        verify_push(headers, BODY, secret=SECRET)
    assert caught.value.kind == "unauthenticated"
    assert header in caught.value.reason


def test_a_signature_over_another_body_is_refused() -> None:
    tampered = BODY.replace(b"main", b"evil")
    with pytest.raises(WebhookError, match="does not match"):
        verify_push(github(), tampered, secret=SECRET)


@pytest.mark.parametrize(
    ("headers", "missing"),
    [
        ({"X-GitHub-Event": "push"}, "X-Hub-Signature-256"),
        ({"X-Gitlab-Event": "Push Hook"}, "X-Gitlab-Token"),
        ({"X-Gitea-Event": "push"}, "X-Gitea-Signature"),
    ],
)
def test_a_missing_signature_header_is_named(headers: dict[str, str], missing: str) -> None:
    with pytest.raises(WebhookError, match=f"missing {missing} header"):
        verify_push(headers, BODY, secret=SECRET)


def test_a_request_from_no_known_provider_is_refused() -> None:
    with pytest.raises(WebhookError, match="no signature header"):
        verify_push({"Content-Type": "application/json"}, BODY, secret=SECRET)


def test_a_signed_ping_is_not_a_push() -> None:
    headers = {**github(), "X-GitHub-Event": "ping"}
    with pytest.raises(WebhookError) as caught:
        verify_push(headers, BODY, secret=SECRET)
    assert caught.value.kind == "not-push"


def test_a_signed_body_without_a_commit_is_malformed() -> None:
    body = json.dumps({"ref": "refs/heads/main"}).encode()
    with pytest.raises(WebhookError) as caught:
        verify_push(github(body), body, secret=SECRET)
    assert caught.value.kind == "malformed"


def test_an_empty_secret_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        verify_push(github(secret=b""), BODY, secret=b"")


@pytest.mark.parametrize(
    ("pushed", "followed", "concerns"),
    [
        ("refs/heads/main", "main", True),
        ("refs/heads/main", "refs/heads/main", True),
        ("refs/heads/other", "main", False),
        ("refs/tags/v1", "v1", True),
        ("refs/heads/main", "c" * 40, False),
    ],
)
def test_push_concerns_only_the_followed_ref(pushed: str, followed: str, concerns: bool) -> None:
    event = PushEvent(provider="github", ref=pushed, after=AFTER)
    assert push_concerns_ref(event, followed) is concerns


def test_a_branch_deletion_is_recognised() -> None:
    assert PushEvent(provider="gitlab", ref="refs/heads/x", after="0" * 40).deleted
