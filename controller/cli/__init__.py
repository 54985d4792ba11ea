"""The `kubedag` command line: one module per group of subcommands.

Each module in COMMAND_MODULES exposes `register(subparsers)`, which adds its
subcommands and sets `handler` (a function of the parsed arguments returning the exit
code) on each.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from controller import __version__

COMMAND_MODULES: tuple[str, ...] = (
    "controller.cli.validate",
    "controller.cli.devcluster",
    "controller.cli.db",
    "controller.cli.runs",
    "controller.cli.controller",
    "controller.cli.status",
    "controller.cli.dev",
    "controller.cli.run",
    "controller.cli.logs",
    "controller.cli.plan",
    "controller.cli.operate",
    "controller.cli.backfill",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubedag",
        description="A declarative GitOps controller for Kubernetes driven by a git "
        "repository of YAML DAGs.",
    )
    parser.add_argument("--version", action="version", version=f"kubedag {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
