"""``python -m services.coordinator.validate_policy FILE``: check a coordinator policy YAML (routing, playbooks or
directory, by its ``kind``) from the shell. Prints ``OK …`` and exits 0, or ``FILE: field: message`` per problem and
exits 1; bad usage exits 2. ``qingfeng policy validate FILE`` runs this module for the coordinator's kinds."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from services.coordinator.adapters.policy_yaml import PolicyFileError, validate_file

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print("usage: python -m services.coordinator.validate_policy FILE", file=sys.stderr)
        return 2
    try:
        print(validate_file(args[0]))
    except PolicyFileError as err:
        print(err)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
