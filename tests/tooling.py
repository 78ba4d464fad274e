"""External programs and files the tests need: skip where one is missing, but fail in CI (any
truthy CI variable: `CI=true`, `CI=1`), where .ci/run installs every program and the shared
schemas sit beside the checkout, so that a check cannot silently vanish."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no", "off"}


def _missing(reason: str) -> None:
    if in_ci():
        pytest.fail(reason)
    pytest.skip(reason)


def require_binary(name: str, install: str) -> str:
    path = shutil.which(name)
    if path is None:
        _missing(f"{name} is not installed ({install})")
    assert path is not None
    return path


def require_file(path: Path, what: str) -> Path:
    if not path.exists():
        _missing(f"{path} is absent ({what})")
    return path
