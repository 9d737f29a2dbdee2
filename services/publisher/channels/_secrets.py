"""Credentials among a channel's options: never the secret itself in a deployment, but where to read it.

An option whose name ends in ``_env`` names the environment variable holding the value of the option without the
suffix (``token_env: QF_PUBLISHER_MASTODON_TOKEN`` gives ``token``); one ending in ``_file`` names a file holding it
(the deploy's secrets directory mounts one file per value; a trailing newline is stripped). A plain value is
accepted too, for loopback test servers only. Values are read once, when the channel is built, and become
``SecretStr`` fields so they never show in a repr, a log line or a validation error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["resolve_secrets"]


def resolve_secrets(options: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``options`` with every ``<name>_env`` / ``<name>_file`` replaced by ``<name>`` and its value.

    Raises ValueError naming ``where``, the option and the variable or file when a value cannot be read.
    """
    out: dict[str, Any] = {}
    for key, value in options.items():
        if key.endswith("_env"):
            name, variable = key.removesuffix("_env"), str(value)
            if variable not in os.environ:
                raise ValueError(f"{where}.{key}: environment variable {variable} is not set")
            resolved: Any = os.environ[variable]
        elif key.endswith("_file"):
            name, path = key.removesuffix("_file"), Path(str(value))
            try:
                resolved = path.read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as err:
                raise ValueError(f"{where}.{key}: cannot read secret file {path}: {err.strerror or err}") from None
        else:
            out.setdefault(key, value)
            continue
        if name in options or name in out:
            raise ValueError(f"{where}.{key}: {name} is given twice")
        out[name] = resolved
    return out
