"""Resolve an integration's credentials from the environment or Prefect Secret blocks.

The store keeps only where a credential is, never its value: for each credential
an object ``{"env": "VARIABLE"}`` or ``{"block": "secret-block-name"}``. Values are
read at the start of a pull, inside the task, and kept in memory only.
"""

from __future__ import annotations

import os
import re
from typing import Any

from rostersync.errors import ConfigurationError

# Credential names per provider and the command-line options that set them.
CREDENTIALS = {
    "clever": ("token",),
    "oneroster-rest": ("client_id", "client_secret"),
}
# Upper case only, so that a token passed by mistake where a name belongs is
# rejected instead of stored and printed.
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")
_BLOCK_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,127}$")


def credential_ref(*, env: str | None = None, block: str | None = None) -> dict:
    """Return the stored reference of one credential, checking the name's form."""
    if (env is None) == (block is None):
        raise ValueError("Pass exactly one of env and block.")
    if env is not None:
        if not _ENV_NAME.match(env):
            raise ConfigurationError(
                "The environment variable name is invalid; use upper-case letters, "
                "digits and underscores, not starting with a digit, such as "
                "CLEVER_TOKEN_D12. Pass the variable's name, never its value."
            )
        return {"env": env}
    assert block is not None
    if not _BLOCK_NAME.match(block):
        raise ConfigurationError(
            f"Prefect block name {block!r} is invalid; use lower-case letters, digits "
            "and dashes, such as clever-token-d12."
        )
    return {"block": block}


def resolve_credential(district_id: str, name: str, reference: Any) -> str:
    """Return the value of credential ``name`` of a district's integration.

    Raises ConfigurationError, naming the variable or block but never a value, when
    the reference is missing or the value is empty.
    """
    label = name.replace("_", " ")
    if not isinstance(reference, dict) or not (
        "env" in reference or "block" in reference
    ):
        raise ConfigurationError(
            f"District {district_id}: the integration names no {label}. Set one with "
            f"`rostersync district update {district_id} --{_option(name)}-env VAR` "
            f"or --{_option(name)}-block NAME."
        )
    if "env" in reference:
        variable = str(reference["env"])
        value = os.environ.get(variable, "")
        if not value.strip():
            raise ConfigurationError(
                f"District {district_id}: the environment variable {variable}, which "
                f"holds the integration's {label}, is not set or is empty. Set it in "
                "the environment of the process or worker that runs the sync."
            )
        return _checked(value.strip(), district_id, label, f"variable {variable}")
    block = str(reference["block"])
    value = _secret_block(district_id, label, block)
    return _checked(value, district_id, label, f"Prefect Secret block {block!r}")


def _checked(value: str, district_id: str, label: str, where: str) -> str:
    """Return a credential that can travel in an HTTP header, or raise."""
    if not value.isprintable():
        raise ConfigurationError(
            f"District {district_id}: the {label} in the {where} contains a line "
            "break or another control character, which no credential has; set it "
            "again without them."
        )
    if label == "token" and not value.isascii():
        # A bearer token is sent unchanged in a header, which allows ASCII only.
        # A token pasted with a typographic quote or dash would fail as revoked.
        raise ConfigurationError(
            f"District {district_id}: the {label} in the {where} contains a "
            "character that is not ASCII, which no Clever token has; copy the "
            "token again from the Clever dashboard."
        )
    return value


def _secret_block(district_id: str, label: str, block: str) -> str:
    from prefect.blocks.system import Secret

    try:
        # _sync makes the call synchronous even where an event loop runs.
        secret = Secret.load(block, _sync=True)  # type: ignore[call-arg]
    except ValueError as exc:
        raise ConfigurationError(
            f"District {district_id}: the Prefect Secret block {block!r}, which "
            f"contains the integration's {label}, is not found. Create it in the "
            "Prefect UI (Blocks, Secret) or with Secret(value=...).save(name)."
        ) from exc
    value = secret.get()  # type: ignore[union-attr]
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(
            f"District {district_id}: the Prefect Secret block {block!r}, which "
            f"contains the integration's {label}, is empty or not text."
        )
    return value.strip()


def _option(name: str) -> str:
    return name.replace("_", "-")
