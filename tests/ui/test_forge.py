"""Links from a run's commit to its page on the forge, for every way a git URL is written."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.ui.forge import commit_url

SHA = "0123456789abcdef0123456789abcdef01234567"
FORGES = (
    "https://github.com/",
    "https://gitlab.com/",
    "https://codeberg.org/",
    "https://bitbucket.org/",
)


@pytest.mark.parametrize(
    ("repo", "page"),
    [
        ("https://github.com/acme/dags.git", f"https://github.com/acme/dags/commit/{SHA}"),
        ("https://github.com/acme/dags", f"https://github.com/acme/dags/commit/{SHA}"),
        ("git@github.com:acme/dags.git", f"https://github.com/acme/dags/commit/{SHA}"),
        ("ssh://git@github.com/acme/dags.git", f"https://github.com/acme/dags/commit/{SHA}"),
        (
            "https://gitlab.com/group/sub/dags.git",
            f"https://gitlab.com/group/sub/dags/-/commit/{SHA}",
        ),
        ("https://codeberg.org/acme/dags", f"https://codeberg.org/acme/dags/commit/{SHA}"),
        ("git@bitbucket.org:acme/dags.git", f"https://bitbucket.org/acme/dags/commits/{SHA}"),
        ("https://GitHub.com/acme/dags", f"https://github.com/acme/dags/commit/{SHA}"),
    ],
)
def test_a_known_forge_links_to_the_commit(repo: str, page: str) -> None:
    assert commit_url(repo, SHA) == page


def test_credentials_in_the_url_never_reach_the_link() -> None:
    page = commit_url("https://x-access-token:s3cr3t@github.com/acme/dags.git", SHA)
    assert page == f"https://github.com/acme/dags/commit/{SHA}"


@pytest.mark.parametrize(
    "repo",
    [
        "file:///srv/git/dags.git",
        "/srv/git/dags.git",
        "https://git.example.com/acme/dags.git",
        "https://github.com/acme",
        'https://github.com/acme/da"gs',
        None,
        "",
    ],
)
def test_an_unknown_forge_or_a_local_path_has_no_link(repo: str | None) -> None:
    assert commit_url(repo, SHA) is None


@pytest.mark.parametrize("revision", [None, "", "main", "x" * 40, "../../evil"])
def test_only_a_commit_hash_is_linked(revision: str | None) -> None:
    assert commit_url("https://github.com/acme/dags", revision) is None


@given(st.text(), st.text())
def test_any_input_gives_none_or_an_https_link_to_a_forge(repo: str, revision: str) -> None:
    page = commit_url(repo, revision)
    if page is not None:
        assert page.startswith(FORGES)
        assert "@" not in page
