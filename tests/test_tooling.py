"""tests/tooling.py: in CI a missing program or file fails its test instead of skipping it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tooling import in_ci, require_binary, require_file


@pytest.mark.parametrize(
    ("value", "ci"),
    [("true", True), ("1", True), ("yes", True), ("", False), ("0", False), ("false", False)],
)
def test_any_truthy_ci_variable_means_ci(
    monkeypatch: pytest.MonkeyPatch, value: str, ci: bool
) -> None:
    monkeypatch.setenv("CI", value)
    assert in_ci() is ci


def test_a_missing_program_or_file_fails_in_ci_and_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    absent = tmp_path / "schema.json"
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception):
        require_binary("no-such-program-kt", "nowhere")
    with pytest.raises(pytest.fail.Exception):
        require_file(absent, "a schema")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        require_file(absent, "a schema")
    absent.write_text("{}")
    assert require_file(absent, "a schema") == absent
