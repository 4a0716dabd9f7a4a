"""JSON Schema validators built from Clever's and OneRoster's official API specs."""

# Clever publishes swagger 2.0 files and 1EdTech an OpenAPI 3.0 file for OneRoster
# 1.2. Both describe bodies in a JSON Schema draft 4 dialect. The specs mark optional
# null with "x-nullable" (swagger) or "nullable" (OpenAPI), which become anyOf with
# {"type": "null"} here. Formats that jsonschema cannot check, such as swagger's
# "datetime" (and "uri" without the rfc3987 package), are ignored, but "date" and
# "date-time" are checked.

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft4Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from tests.conftest import REAL_INPUT

CLEVER_SPEC = REAL_INPUT / "clever-swagger-api" / "v3.0.yml"
CLEVER_EVENTS_SPEC = REAL_INPUT / "clever-swagger-api" / "v3.0-events.yml"
ONEROSTER_SPEC = (
    REAL_INPUT
    / "oneroster-v1p2-openapi"
    / "onerosterv1p2rostersservice_openapi3_v1p0.json"
)
CLEVER_URI = "urn:rostersync:spec:clever-v3.0"
CLEVER_EVENTS_URI = "urn:rostersync:spec:clever-v3.0-events"
ONEROSTER_URI = "urn:rostersync:spec:oneroster-v1p2"
# The role vocabulary of OneRoster 1.1 users (the 1.1 RoleType enumeration).
ONEROSTER_1P1_ROLES = [
    "administrator",
    "aide",
    "guardian",
    "parent",
    "proctor",
    "relative",
    "student",
    "teacher",
]


def clever_validator(definition_name: str, events: bool = False) -> Draft4Validator:
    """Return a validator for one definition of Clever's v3.0 (or events) spec.

    With ``events``, the names include event types such as ``users.updated``, which
    describe one event object.
    """
    uri = CLEVER_EVENTS_URI if events else CLEVER_URI
    registry = _clever_registry(events)
    definitions = registry.contents(uri)["definitions"]
    if definition_name not in definitions:
        raise KeyError(f"The Clever spec has no definition {definition_name!r}.")
    return _validator(f"{uri}#/definitions/{definition_name}", registry)


def oneroster_validator(schema_name: str) -> Draft4Validator:
    """Return a validator for one OneRoster 1.2 schema, adjusted to the 1.1 shapes."""
    registry = _oneroster_registry()
    schemas = registry.contents(ONEROSTER_URI)["components"]["schemas"]
    if schema_name not in schemas:
        raise KeyError(f"The OneRoster spec has no schema {schema_name!r}.")
    return _validator(f"{ONEROSTER_URI}#/components/schemas/{schema_name}", registry)


def _validator(reference: str, registry: Registry) -> Draft4Validator:
    return Draft4Validator(
        {"$ref": reference},
        registry=registry,
        # Draft 4 defines no "date" format, but swagger 2.0 and OpenAPI 3.0 do.
        format_checker=FormatChecker(),
    )


@cache
def _clever_registry(events: bool) -> Registry:
    path = CLEVER_EVENTS_SPEC if events else CLEVER_SPEC
    uri = CLEVER_EVENTS_URI if events else CLEVER_URI
    spec = _read_yaml(path)
    document = {"definitions": _allow_null(spec["definitions"], "x-nullable")}
    return _registry(uri, document)


@cache
def _oneroster_registry() -> Registry:
    spec = json.loads(ONEROSTER_SPEC.read_text(encoding="utf-8"))
    schemas = _allow_null(spec["components"]["schemas"], "nullable")
    _adjust_to_oneroster_1p1(schemas)
    return _registry(ONEROSTER_URI, {"components": {"schemas": schemas}})


def _adjust_to_oneroster_1p1(schemas: dict[str, Any]) -> None:
    """Change the 1.2 schemas where a 1.1 body has another shape; nothing else."""
    user = schemas["UserDType"]
    # A 1.1 user has one "role" string and an "orgs" list of org references, which
    # 1.2 replaced with "roles" (required there) and "primaryOrg". So "roles" is no
    # longer required, and "role" and "orgs" are allowed next to the 1.2 fields.
    user["required"] = [name for name in user["required"] if name != "roles"]
    user["properties"]["role"] = {"type": "string", "enum": ONEROSTER_1P1_ROLES}
    user["properties"]["orgs"] = {
        "type": "array",
        "items": {"$ref": "#/components/schemas/OrgGUIDRefDType"},
    }


def _allow_null(schema: Any, flag: str) -> Any:
    """Return a copy of ``schema`` where each subschema marked ``flag`` accepts null."""
    if isinstance(schema, list):
        return [_allow_null(item, flag) for item in schema]
    if not isinstance(schema, dict):
        return copy.deepcopy(schema)
    converted = {
        key: _allow_null(value, flag)
        for key, value in schema.items()
        if not (key == flag and isinstance(value, bool))
    }
    if schema.get(flag) is True:
        return {"anyOf": [{"type": "null"}, converted]}
    return converted


def _registry(uri: str, document: dict[str, Any]) -> Registry:
    resource = Resource.from_contents(document, default_specification=DRAFT4)
    return Registry().with_resource(uri, resource)


def _read_yaml(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)
