"""The `qingfeng` command: the local stack, the suite in the background, the demo and small tools.

Each subcommand lives in its own module; this file only parses arguments and dispatches, so a person
adding a command edits their module and one line here.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from qingfeng.cli import audit, demo, import_posts, lag, policy, stack, suite, tokens
from qingfeng.cli._console import CliError

__all__ = ["build_parser", "main"]


def _add_stack(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "stack",
        help="local Kafka and Elasticsearch for tests, the demo and CI",
        description="Local Kafka (127.0.0.1:19092) and Elasticsearch (http://127.0.0.1:19200). "
        "Environment: QF_STACK_HOME, QF_STACK_KAFKA_PORT, QF_STACK_ES_PORT, QF_STACK_JAVA_HOME, "
        "QF_STACK_TIMEOUT_S (see deploy/stack/README.md).",
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


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (exposed for tests and for generating help)."""
    parser = argparse.ArgumentParser(prog="qingfeng", description="Qingfeng (清风) developer and operator CLI.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_stack(commands)

    up = commands.add_parser("up", help="start the whole suite in the background")
    up.add_argument(
        "--indexers",
        type=int,
        choices=range(33),
        metavar="N",
        default=None,
        help="separate indexer processes (a consumer group) beside the collector's fetch role; 0: one collector "
        "does both (default: QF_SUITE_INDEXERS, else 1)",
    )
    up.set_defaults(func=lambda args: suite.suite_up(args.indexers))
    commands.add_parser("down", help="stop the suite").set_defaults(func=lambda args: suite.suite_down())
    status = commands.add_parser("status", help="show which suite processes are alive and each consumer's lag")
    lag.add_arguments(status)
    status.set_defaults(func=lambda args: lag.status(args, suite.suite_status))

    demo_parser = commands.add_parser("demo", help="replay a little of ../shared/data through the running suite")
    demo.add_arguments(demo_parser)
    demo_parser.set_defaults(func=demo.run)

    tokens_parser = commands.add_parser("tokens", help="provision gateway tokens and list their files")
    tokens.add_arguments(tokens_parser)
    tokens_parser.set_defaults(func=tokens.run)

    import_parser = commands.add_parser("import", help="import posts from a JSONL file")
    import_posts.add_arguments(import_parser)
    import_parser.set_defaults(func=import_posts.run)

    policy_parser = commands.add_parser("policy", help="work with versioned policy files")
    policy_actions = policy_parser.add_subparsers(dest="action", required=True, metavar="{validate}")
    validate = policy_actions.add_parser("validate", help="validate a policy YAML file")
    policy.add_validate_arguments(validate)
    validate.set_defaults(func=policy.validate)

    audit_parser = commands.add_parser("audit", help="check the tamper-evident audit log")
    audit_actions = audit_parser.add_subparsers(dest="action", required=True, metavar="{verify}")
    audit_verify = audit_actions.add_parser("verify", help="recompute the hash chain; name the first broken record")
    audit.add_verify_arguments(audit_verify)
    audit_verify.set_defaults(func=audit.verify)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `qingfeng` console script; returns the process exit code."""
    args = build_parser().parse_args(argv)
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
