"""devstack's Stack: what its children inherit, how a start fails, which files stay open."""

from __future__ import annotations

import gc
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest

from devstack.processes import Stack


def test_an_exported_api_key_does_not_reach_a_test_stack(
    make_stack: Callable[..., Stack], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBETASKS_API_KEY", "from-the-developers-shell")
    stack = make_stack()
    stack.start_redis()
    stack.start_api()
    assert httpx.get(f"{stack.api_url}/tasks", timeout=5).status_code == 200


def test_a_child_that_dies_while_starting_fails_the_start_at_once_with_its_output(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    stack.start_redis()
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="KUBETASKS_TOMBSTONE_TTL_SECONDS"):
        stack.start_api(timeout=20, KUBETASKS_TOMBSTONE_TTL_SECONDS="1")
    assert time.monotonic() - started < 10  # it did not sit out the timeout


def test_the_stack_closes_the_log_files_it_opens(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        stack.start_redis()
        stack.start_api()
        gc.collect()  # a file left to the garbage collector says so now
    assert not [w for w in caught if str(stack.workdir) in str(w.message)]
    opened = {Path(f.path) for f in psutil.Process().open_files()}
    assert not {path for path in opened if stack.workdir in path.parents}
