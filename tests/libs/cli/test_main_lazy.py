"""`qingfeng` imports only the module of the subcommand it runs; help and options are those of the full parser."""

from __future__ import annotations

import subprocess
import sys

import pytest
from qingfeng.cli import import_posts, pki
from qingfeng.cli.main import COMMANDS, build_parser

_SUBCOMMAND_MODULES = (
    "qingfeng.cli.stack",
    "qingfeng.cli.suite",
    "qingfeng.cli.lag",
    "qingfeng.cli.demo",
    "qingfeng.cli.tokens",
    "qingfeng.cli.import_posts",
    "qingfeng.cli.policy",
    "qingfeng.cli.audit",
    "qingfeng.cli.pki",
    "qingfeng.rpc.server",
    "qingfeng.rpc.credentials",
    "aiokafka",
)


def _loaded_after(argv: list[str]) -> set[str]:
    """Which heavy modules are in sys.modules after `qingfeng ARGV` ran (its SystemExit caught)."""
    code = (
        "import sys\n"
        "from qingfeng.cli.main import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        f"print('loaded:' + ','.join(m for m in {_SUBCOMMAND_MODULES!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    [loaded] = [line for line in out.stdout.splitlines() if line.startswith("loaded:")]
    return set(filter(None, loaded.removeprefix("loaded:").split(",")))


def test_top_level_help_imports_no_subcommand() -> None:
    assert _loaded_after(["--help"]) == set()


def test_import_help_imports_only_the_import_client() -> None:
    assert _loaded_after(["import", "--help"]) == {"qingfeng.cli.import_posts"}


def test_a_missing_file_fails_before_any_credential_is_loaded() -> None:
    assert _loaded_after(["import", "/nonexistent/posts.jsonl", "--collector", "127.0.0.1:1"]) == {
        "qingfeng.cli.import_posts"
    }


@pytest.mark.parametrize("name", [name for name, _, _ in COMMANDS])
def test_a_partial_parser_parses_its_command_as_the_full_one(name: str) -> None:
    argv = {
        "stack": ["stack", "down", "--wipe"],
        "up": ["up", "--indexers", "2"],
        "down": ["down"],
        "status": ["status"],
        "demo": ["demo", "--limit", "5"],
        "tokens": ["tokens"],
        "import": ["import", "f.jsonl", "--batch-lines", "7"],
        "policy": ["policy", "validate", "p.yaml"],
        "audit": ["audit", "verify"],
    }[name]
    full, partial = vars(build_parser().parse_args(argv)), vars(build_parser(only=[name]).parse_args(argv))
    # The dispatch functions are closures made per parser: compare what they call, not their identity.
    full_func, partial_func = full.pop("func"), partial.pop("func")
    assert full == partial
    assert full_func.__code__ is partial_func.__code__


def test_the_import_issuer_is_the_pki_ones() -> None:
    assert import_posts.IMPORT_ISSUER == pki.IMPORT_ISSUER
