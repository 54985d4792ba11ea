"""The `kubedag` command line: one module per group of subcommands.

Each module in COMMAND_MODULES exposes `register(subparsers)`, which adds its
subcommands and sets `handler` (a function of the parsed arguments returning the exit
code) on each.
"""

from __future__ import annotations

import argparse
import importlib
import os
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


# A reader that stops early (`kubedag runs --output json | head`) is no error: exit as
# a shell reports a process ended by SIGPIPE (128 + 13), without a traceback.
BROKEN_PIPE_EXIT = 141


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
        sys.stdout.flush()
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Python flushes stdout once more at exit, which would fail again and print a
        # second error: what is left goes nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE_EXIT
    return code


if __name__ == "__main__":
    sys.exit(main())
