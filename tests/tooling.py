"""External programs the tests drive: skip where one is missing, but fail in CI (CI=true),
where .ci/run installs every one of them, so a check cannot silently vanish."""

from __future__ import annotations

import os
import shutil

import pytest


def require_binary(name: str, install: str) -> str:
    path = shutil.which(name)
    if path:
        return path
    reason = f"{name} is not installed ({install})"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)
