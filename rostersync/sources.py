"""Choose the reader or the live client for an integration's provider and source."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from rostersync.errors import ConfigurationError, RostersyncError
from rostersync.providers.http import (
    BearerToken,
    ProviderHttp,
    RateLimiter,
    RetryPolicy,
    TokenSource,
    check_base_url,
    is_url,
    make_client,
)
from rostersync.roster import Roster
from rostersync.settings import Settings, get_settings
from rostersync.store.districts import IntegrationConfig


def read_roster(
    integration: IntegrationConfig,
    *,
    full_pull: bool = False,
    transport: httpx.BaseTransport | None = None,
) -> Roster:
    """Pull the district's shared roster from its files or its provider's API.

    ``full_pull`` makes an incremental integration read everything this time.
    ``transport`` replaces httpx's network transport, for tests.
    """
    provider = integration.provider
    if is_url(integration.source):
        if provider == "clever":
            return _pull_clever(integration, get_settings(), full_pull, transport)
        if provider == "oneroster-rest":
            return _pull_oneroster(integration, get_settings(), full_pull, transport)
    elif provider == "oneroster-csv":
        from rostersync.readers.oneroster_csv import read_oneroster_csv

        return read_oneroster_csv(_existing_path(integration))
    elif provider == "clever":
        from rostersync.readers.clever import read_clever_files

        return read_clever_files(_existing_path(integration))
    elif provider == "oneroster-rest":
        from rostersync.readers.oneroster_rest import read_oneroster_rest_files

        return read_oneroster_rest_files(_existing_path(integration))
    raise ConfigurationError(
        f"District {integration.district_id}: provider {provider!r} with source "
        f"{integration.source!r} is not supported; use a Clever or OneRoster REST "
        "URL, or a folder or zip of the district's files."
    )


def _pull_clever(
    integration: IntegrationConfig,
    settings: Settings,
    full_pull: bool,
    transport: httpx.BaseTransport | None,
) -> Roster:
    from rostersync.providers.clever import CleverClient, StoredCursor, pull_clever
    from rostersync.providers.credentials import resolve_credential

    check_base_url(integration.source, district_id=integration.district_id)
    token = resolve_credential(
        integration.district_id, "token", integration.credentials_ref.get("token")
    )
    limiter = RateLimiter.for_key("clever", token, settings.clever_requests_per_minute)
    with _session(
        integration, settings, BearerToken(token), limiter, transport
    ) as http:
        return pull_clever(
            CleverClient(http, page_size=settings.clever_page_size),
            source=integration.source,
            cursor=StoredCursor(integration.cursor, integration.cursor_at),
            incremental=integration.incremental,
            full_pull=full_pull,
        )


def _pull_oneroster(
    integration: IntegrationConfig,
    settings: Settings,
    full_pull: bool,
    transport: httpx.BaseTransport | None,
) -> Roster:
    from rostersync.providers.credentials import resolve_credential
    from rostersync.providers.oneroster import (
        BASE_PATH,
        OAuth1Signer,
        OAuth2ClientCredentials,
        OneRosterClient,
        StoredTimestamp,
        pull_oneroster,
    )

    url = check_base_url(integration.source, district_id=integration.district_id)
    refs = integration.credentials_ref
    district_id = integration.district_id
    client_id = resolve_credential(district_id, "client_id", refs.get("client_id"))
    secret = resolve_credential(district_id, "client_secret", refs.get("client_secret"))
    auth: httpx.Auth | None = None
    token_source = None
    if integration.auth == "oauth2":
        if not integration.token_url:
            raise ConfigurationError(
                f"District {district_id}: OAuth 2 needs the token endpoint; set it "
                f"with `rostersync district update {district_id} --token-url URL`."
            )
        check_base_url(
            integration.token_url, district_id=district_id, label="token URL"
        )
        token_source = OAuth2ClientCredentials(integration.token_url, client_id, secret)
    else:
        auth = OAuth1Signer(client_id, secret)
    limiter = RateLimiter.for_key(
        "oneroster-rest", client_id, settings.oneroster_requests_per_minute
    )
    path = url.path.rstrip("/")
    base_path = path if path.endswith(BASE_PATH) else path + BASE_PATH
    with _session(
        integration, settings, auth, limiter, transport, token_source
    ) as http:
        return pull_oneroster(
            OneRosterClient(
                http, page_size=settings.oneroster_page_size, base_path=base_path
            ),
            source=integration.source,
            cursor=StoredTimestamp(integration.cursor, integration.cursor_at),
            incremental=integration.incremental,
            full_pull=full_pull,
        )


@contextmanager
def _session(
    integration: IntegrationConfig,
    settings: Settings,
    auth: httpx.Auth | None,
    limiter: RateLimiter,
    transport: httpx.BaseTransport | None,
    token_source: TokenSource | None = None,
) -> Iterator[ProviderHttp]:
    """Open the HTTP session of one pull on the source's origin, and close it."""
    url = httpx.URL(integration.source)
    origin = f"{url.scheme}://{url.netloc.decode()}"
    client = make_client(
        origin, timeout=settings.http_timeout_seconds, auth=auth, transport=transport
    )
    with client:
        http = ProviderHttp(
            client,
            provider=integration.provider,
            policy=RetryPolicy.from_settings(settings),
            limiter=limiter,
            token_source=token_source,
        )
        try:
            yield http
        except RostersyncError as exc:
            exc.pull = http.stats.as_dict()
            raise


def _existing_path(integration: IntegrationConfig) -> Path:
    path = Path(integration.source).expanduser()
    if not path.exists():
        raise ConfigurationError(
            f"District {integration.district_id}: source {str(path)!r} does not "
            "exist; point the integration at the folder or zip file the district "
            "shares."
        )
    return path
