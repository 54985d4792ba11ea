"""`kubedag plan [BASE] [HEAD]`: what merging HEAD will change, for a review or a CI job.

The exit code follows `terraform plan -detailed-exitcode`, so a CI step can branch on
it without reading the output: 0 nothing changes, 1 HEAD is invalid (or the plan could
not be made), 2 HEAD is valid and changes something. Invalid HEAD wins over changes:
a merge the controller would partly refuse must not look like an ordinary change.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import git
import yaml

from controller.executor.podspec import PodConfig
from controller.plan.compute import DagSet, Plan, compute_plan
from controller.plan.gitsource import (
    GitSourceError,
    commit_report,
    default_branch,
    file_at,
    merge_base,
    open_repository,
    resolve_revision,
    working_tree_report,
)
from controller.plan.history import HistoryError, history_from
from controller.plan.output import RENDERERS
from controller.spec.validate import ValidationReport

EXIT_ERROR = 1
PLACEHOLDER_REPO_URL = "https://git.example/dags.git"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="show what merging a commit of DAG files will change",
        description="Compare the DAG files of BASE and HEAD as the controller would read "
        "them: DAGs added, removed, renamed, changed or invalid; schedule changes with the "
        "next five fire times before and after; pause changes; the runs the merge creates "
        "at once (catchup); task graph changes; and the worker pod diff of every task. "
        "Exit status: 0 no changes, 1 HEAD invalid or an error, 2 changes.",
    )
    parser.add_argument(
        "base",
        nargs="?",
        metavar="BASE",
        help="the revision merged into (default: the merge base of HEAD and the default branch)",
    )
    parser.add_argument(
        "head",
        nargs="?",
        metavar="HEAD",
        help="the revision to merge (default: the working tree, committed or not)",
    )
    parser.add_argument("--repo", default=".", metavar="DIR", help="the git repository")
    parser.add_argument(
        "--path", default=".", metavar="DIR", help="the DAG folder inside the repository"
    )
    parser.add_argument("--output", "-o", choices=sorted(RENDERERS), default="text")
    parser.add_argument(
        "--now", metavar="TIME", help="plan as of this RFC 3339 time (default: now)"
    )
    parser.add_argument(
        "--pod-template",
        metavar="FILE",
        help="the controller's pod template, as a path inside the repository: read at BASE "
        "and at HEAD, so a change to it shows in the pod diffs",
    )
    parser.add_argument(
        "--namespace", default="default", help="the namespace worker pods are created in"
    )
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="read the DAGs' latest and open runs from the controller's database "
        "(default: assume each DAG ran on schedule; open runs are not listed)",
    )
    parser.set_defaults(handler=run_plan)


def _now(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _pod_config(
    repo: git.Repo, revision: str | None, *, template: str | None, namespace: str
) -> PodConfig:
    config = PodConfig(repo_url=PLACEHOLDER_REPO_URL, namespace=namespace)
    if template is None:
        return config
    data = file_at(repo, revision, template)
    where = f"{template} at {revision[:12] if revision else 'the working tree'}"
    try:
        loaded = None if data is None else yaml.safe_load(data)
    except yaml.YAMLError as error:
        raise GitSourceError(f"{where} is not YAML: {error}") from error
    if loaded is not None and (not isinstance(loaded, dict) or loaded.get("kind", "Pod") != "Pod"):
        raise GitSourceError(f"{where} is not a pod template (a Pod manifest)")
    return dataclasses.replace(config, pod_template=loaded)


def run_plan(args: argparse.Namespace) -> int:
    try:
        now = _now(args.now)
    except ValueError:
        print(f"error: --now {args.now!r} is not an RFC 3339 time", file=sys.stderr)
        return EXIT_ERROR
    try:
        with open_repository(Path(args.repo)) as repo:
            plan = _plan(repo, args, now=now)
    except (GitSourceError, HistoryError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    sys.stdout.write(RENDERERS[args.output](plan))
    return plan.exit_code


def _plan(repo: git.Repo, args: argparse.Namespace, *, now: datetime) -> Plan:
    head = None if args.head is None else resolve_revision(repo, args.head)
    if args.base is not None:
        base = resolve_revision(repo, args.base)
    else:
        base = merge_base(repo, default_branch(repo), head or "HEAD")
    head_report = (
        working_tree_report(repo, dags_path=args.path)
        if head is None
        else commit_report(repo, head, dags_path=args.path)
    )
    base_report = commit_report(repo, base, dags_path=args.path)

    def side(report: ValidationReport, revision: str | None) -> DagSet:
        config = _pod_config(repo, revision, template=args.pod_template, namespace=args.namespace)
        return DagSet.of(report, pod_config=config)

    names = {d.dag.name for d in base_report.dags} | {d.dag.name for d in head_report.dags}
    return compute_plan(
        side(base_report, base),
        side(head_report, head),
        now=now,
        history=None if args.database_url is None else history_from(args.database_url, names),
        base_label=args.base or base[:12],
        head_label=args.head or "working tree",
    )
