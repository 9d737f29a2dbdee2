"""Credentials in a channels YAML: never the secret itself in production, but where to read it.

A secret field accepts one of

- ``{file: /run/secrets/mastodon_token}``: the file's content, trailing newline stripped (the deploy's secrets
  directory mounts one file per value);
- ``{env: QF_PUBLISHER_MASTODON_TOKEN}``: an environment variable, read once when the YAML is loaded;
- a plain string, for loopback test servers and the example file only.

It becomes a ``SecretStr`` so it never shows in a repr, a log line or a validation error.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, SecretStr

__all__ = ["Secret"]


def _resolve(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    if set(value) == {"file"}:
        path = Path(str(value["file"]))
        try:
            return path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as err:
            raise ValueError(f"cannot read secret file {path}: {err.strerror or err}") from None
    if set(value) == {"env"}:
        name = str(value["env"])
        if name not in os.environ:
            raise ValueError(f"environment variable {name} is not set")
        return os.environ[name]
    raise ValueError("a secret is a string, {file: <path>} or {env: <variable>}")


Secret = Annotated[SecretStr, BeforeValidator(_resolve)]
