"""The `qingfeng` command: the local stack, the suite in the background, the demo and small tools.

Each subcommand lives in its own module; this file only parses arguments and dispatches, so a person
adding a command edits their module and one entry here.

A subcommand's module is imported only when that subcommand runs (or for the full parser that tests and help
generation ask for): `qingfeng import` is a short-lived client whose start-up CPU counts per file imported, and
importing every subcommand (Kafka admin, the stack's servers, gRPC health, the PKI) cost it ~0.45 s of CPU.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Collection, Sequence
from typing import Final

from qingfeng.cli._console import CliError

__all__ = ["build_parser", "main"]

_Parser = argparse.ArgumentParser


def _fill_stack(parser: _Parser) -> None:
    from qingfeng.cli import stack

    parser.description = (
        "Local Kafka (127.0.0.1:19092) and Elasticsearch (http://127.0.0.1:19200). "
        "Environment: QF_STACK_HOME, QF_STACK_KAFKA_PORT, QF_STACK_ES_PORT, QF_STACK_JAVA_HOME, "
        "QF_STACK_TIMEOUT_S (see deploy/stack/README.md)."
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="{up,down,status}")
    up = actions.add_parser("up", help="start both servers (reusing running ones) and wait until healthy")
    up.add_argument("--with-jaeger", action="store_true", help="also build (once) and start a local Jaeger")
    up.set_defaults(func=lambda args: stack.stack_up(with_jaeger=args.with_jaeger))
    down = actions.add_parser("down", help="stop both servers and their child processes")
    down.add_argument("--wipe", action="store_true", help="also delete Kafka's and Elasticsearch's data")
    down.set_defaults(func=lambda args: stack.stack_down(wipe=args.wipe))
    status = actions.add_parser("status", help="each server healthy/down with its version; exit 0 iff both healthy")
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    status.set_defaults(func=lambda args: stack.stack_status(as_json=args.json))


def _fill_up(parser: _Parser) -> None:
    from qingfeng.cli import suite

    parser.add_argument(
        "--indexers",
        type=int,
        choices=range(33),
        metavar="N",
        default=None,
        help="separate indexer processes (a consumer group) beside the collector's fetch role; 0: one collector "
        "does both (default: QF_SUITE_INDEXERS, else 1)",
    )
    parser.set_defaults(func=lambda args: suite.suite_up(args.indexers))


def _fill_down(parser: _Parser) -> None:
    from qingfeng.cli import suite

    parser.set_defaults(func=lambda args: suite.suite_down())


def _fill_status(parser: _Parser) -> None:
    from qingfeng.cli import lag, suite

    lag.add_arguments(parser)
    parser.set_defaults(func=lambda args: lag.status(args, suite.suite_status))


def _fill_demo(parser: _Parser) -> None:
    from qingfeng.cli import demo

    demo.add_arguments(parser)
    parser.set_defaults(func=demo.run)


def _fill_tokens(parser: _Parser) -> None:
    from qingfeng.cli import tokens

    tokens.add_arguments(parser)
    parser.set_defaults(func=tokens.run)


def _fill_import(parser: _Parser) -> None:
    from qingfeng.cli import import_posts

    import_posts.add_arguments(parser)
    parser.set_defaults(func=import_posts.run)


def _fill_policy(parser: _Parser) -> None:
    from qingfeng.cli import policy

    actions = parser.add_subparsers(dest="action", required=True, metavar="{validate}")
    validate = actions.add_parser("validate", help="validate a policy YAML file")
    policy.add_validate_arguments(validate)
    validate.set_defaults(func=policy.validate)


def _fill_audit(parser: _Parser) -> None:
    from qingfeng.cli import audit

    actions = parser.add_subparsers(dest="action", required=True, metavar="{verify}")
    verify = actions.add_parser("verify", help="recompute the hash chain; name the first broken record")
    audit.add_verify_arguments(verify)
    verify.set_defaults(func=audit.verify)


# Name, one-line help (what `qingfeng --help` lists without importing anything) and what fills the subparser.
COMMANDS: Final[tuple[tuple[str, str, Callable[[_Parser], None]], ...]] = (
    ("stack", "local Kafka and Elasticsearch for tests, the demo and CI", _fill_stack),
    ("up", "start the whole suite in the background", _fill_up),
    ("down", "stop the suite", _fill_down),
    ("status", "show which suite processes are alive and each consumer's lag", _fill_status),
    ("demo", "replay a little of ../shared/data through the running suite", _fill_demo),
    ("tokens", "provision gateway tokens and list their files", _fill_tokens),
    ("import", "import posts from a JSONL file", _fill_import),
    ("policy", "work with versioned policy files", _fill_policy),
    ("audit", "check the tamper-evident audit log", _fill_audit),
)


def build_parser(only: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser; with `only`, the other subcommands are listed but their options (and modules) are not
    loaded. Without it, the full parser (for tests and for generating help)."""
    parser = argparse.ArgumentParser(prog="qingfeng", description="Qingfeng (清风) developer and operator CLI.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text, fill in COMMANDS:
        sub = commands.add_parser(name, help=help_text)
        if only is None or name in only:
            fill(sub)
    return parser


def _command_in(argv: Sequence[str]) -> list[str]:
    """The subcommand argv names: the top-level parser takes no option but -h, so it is the first word that is not
    an option (none for `qingfeng --help`; an unknown word is left for argparse to refuse)."""
    first = next((arg for arg in argv if not arg.startswith("-")), None)
    return [first] if first is not None else []


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `qingfeng` console script; returns the process exit code."""
    words = sys.argv[1:] if argv is None else argv
    args = build_parser(only=_command_in(words)).parse_args(words)
    # The Kafka health probe retries through refused connections; those are expected, not errors to print.
    logging.getLogger("aiokafka").addHandler(logging.NullHandler())
    logging.getLogger("aiokafka").propagate = False
    try:
        code: int = args.func(args)
    except CliError as exc:
        print(f"qingfeng: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
