"""Fixtures for the deploy tests: the development certificates, made once by deploy/certs/make-dev-certs.sh."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.manifests import DEPLOY


def run_script(script: str, out: Path) -> None:
    """Run a deploy/ script (bash) writing into ``out``, with this interpreter as the one it calls."""
    if shutil.which("openssl") is None:
        pytest.skip("the deploy scripts need openssl")
    env = {**os.environ, "PYTHON": sys.executable}
    subprocess.run(["bash", str(DEPLOY / script), str(out)], check=True, capture_output=True, env=env, timeout=120)


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("certs") / "out"
    run_script("certs/make-dev-certs.sh", out)
    yield out
