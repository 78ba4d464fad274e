"""The docs stay true to the code: every setting and every task is documented."""

from __future__ import annotations

from pathlib import Path

from contracts.catalogue import TASKS
from contracts.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_is_in_the_readme_configuration_table() -> None:
    readme = (ROOT / "README.md").read_text()
    for name, field in Settings.model_fields.items():
        variable = field.alias or f"KUBETASKS_{name.upper()}"
        assert f"`{variable}`" in readme, f"{variable} is not documented in README.md"


def test_every_task_is_named_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in TASKS:
        assert f"`{name}`" in readme
