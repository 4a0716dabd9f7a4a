"""OAuth 1.0a request signing with HMAC-SHA256 (RFC 5849), as ClassLink requires.

ClassLink's OneRoster API signs two-legged: the client id is the consumer key, the
client secret is the consumer secret, and there is no token, so the token secret in
the signing key is empty. Every query parameter and every ``oauth_*`` parameter but
the signature enters the signature base string.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable
from urllib.parse import quote, unquote, urlsplit

SIGNATURE_METHOD = "HMAC-SHA256"


def percent_encode(value: str) -> str:
    """Encode ``value`` as RFC 5849 section 3.6 requires: only unreserved bytes stay."""
    return quote(value.encode("utf-8"), safe="-._~")


def base_string_uri(url: str) -> str:
    """Return the scheme, host, port when not the default, and path of ``url``.

    RFC 5849 section 3.4.1.2: scheme and host in lower case, no query, no fragment.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    default_port = {"http": 80, "https": 443}.get(scheme)
    if parts.port is not None and parts.port != default_port:
        host = f"{host}:{parts.port}"
    return f"{scheme}://{host}{parts.path or '/'}"


def normalized_parameters(parameters: Iterable[tuple[str, str]]) -> str:
    """Encode each name and value, sort the pairs and join them (section 3.4.1.3.2)."""
    encoded = sorted(
        (percent_encode(name), percent_encode(value)) for name, value in parameters
    )
    return "&".join(f"{name}={value}" for name, value in encoded)


def signature_base_string(
    method: str, url: str, parameters: Iterable[tuple[str, str]]
) -> str:
    """Return the signature base string of a request (RFC 5849 section 3.4.1)."""
    return "&".join(
        (
            method.upper(),
            percent_encode(base_string_uri(url)),
            percent_encode(normalized_parameters(parameters)),
        )
    )


def sign(base_string: str, consumer_secret: str, token_secret: str = "") -> str:
    """Return the base64 HMAC-SHA256 of ``base_string`` (RFC 5849 section 3.4.2)."""
    key = f"{percent_encode(consumer_secret)}&{percent_encode(token_secret)}"
    digest = hmac.new(
        key.encode("utf-8"), base_string.encode("utf-8"), hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode("ascii")


def oauth_parameters(
    consumer_key: str, *, timestamp: int | None = None, nonce: str | None = None
) -> dict[str, str]:
    """Return the ``oauth_*`` protocol parameters of one request, unsigned."""
    return {
        "oauth_consumer_key": consumer_key,
        "oauth_nonce": nonce or secrets.token_hex(16),
        "oauth_signature_method": SIGNATURE_METHOD,
        "oauth_timestamp": str(int(time.time()) if timestamp is None else timestamp),
        "oauth_version": "1.0",
    }


def authorization_header(
    method: str,
    url: str,
    query: Iterable[tuple[str, str]],
    *,
    consumer_key: str,
    consumer_secret: str,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> str:
    """Sign a request and return its ``Authorization: OAuth ...`` header value.

    ``query`` contains the request's decoded query parameters. A GET has no body
    parameters to sign.
    """
    protocol = oauth_parameters(consumer_key, timestamp=timestamp, nonce=nonce)
    base = signature_base_string(method, url, [*query, *protocol.items()])
    protocol["oauth_signature"] = sign(base, consumer_secret)
    fields = ", ".join(
        f'{percent_encode(name)}="{percent_encode(value)}"'
        for name, value in protocol.items()
    )
    return f"OAuth {fields}"


def parse_authorization_header(value: str) -> dict[str, str]:
    """Return the decoded parameters of an ``OAuth ...`` header, or {} for another."""

    scheme, _, rest = value.partition(" ")
    if scheme.lower() != "oauth":
        return {}
    parameters = {}
    for item in rest.split(","):
        name, separator, quoted = item.strip().partition("=")
        if not separator or len(quoted) < 2 or quoted[0] != '"' or quoted[-1] != '"':
            continue
        parameters[unquote(name)] = unquote(quoted[1:-1])
    return parameters
