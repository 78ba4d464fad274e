"""Every value the chart takes has a description in values.schema.json, at any depth: what it
does, its units and its limits, for editors that read the schema and for reviewers of values."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from .rendering import CHART_DIR

SCHEMA_FILE = CHART_DIR / "values.schema.json"
# Keywords whose values are schemas, so properties can hide under them.
SCHEMA_VALUES = ("items", "additionalProperties")
SCHEMA_LISTS = ("anyOf", "oneOf", "allOf")


def undescribed(schema: dict[str, Any], path: str = "") -> Iterator[str]:
    """Paths of the properties without a description, e.g. `api.ingress.hosts[].host`."""
    for name, sub in schema.get("properties", {}).items():
        if not str(sub.get("description", "")).strip():
            yield f"{path}.{name}".lstrip(".")
        yield from undescribed(sub, f"{path}.{name}")
    for keyword in SCHEMA_VALUES:
        sub = schema.get(keyword)
        if isinstance(sub, dict):
            yield from undescribed(sub, path + ("[]" if keyword == "items" else ".*"))
    for keyword in SCHEMA_LISTS:
        for sub in schema.get(keyword, []):
            yield from undescribed(sub, path)


def test_every_value_has_a_description() -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    missing = list(undescribed(schema))
    assert not missing, f"values.schema.json: no description for {missing}"


def test_the_walk_reaches_properties_inside_items_maps_and_alternatives() -> None:
    schema = {
        "properties": {
            "bare": {"type": "string"},
            "blank": {"description": " "},
            "object": {"description": "d", "properties": {"bare": {}}},
            "list": {"description": "d", "items": {"properties": {"bare": {}}}},
            "map": {"description": "d", "additionalProperties": {"properties": {"bare": {}}}},
            "either": {
                "description": "d",
                "anyOf": [{"type": "integer"}, {"properties": {"bare": {}}}],
            },
            "described": {"description": "d", "properties": {"inner": {"description": "d"}}},
        }
    }
    assert list(undescribed(schema)) == [
        "bare",
        "blank",
        "object.bare",
        "list[].bare",
        "map.*.bare",
        "either.bare",
    ]
