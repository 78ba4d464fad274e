"""Dependencies shared by the routes, as `Annotated` aliases.

All `async def`: FastAPI runs a plain `def` dependency in its thread pool, which costs three
thread hand-offs per request for work that never blocks.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from api.exceptions import Forbidden, Unauthorized
from api.store import TaskStore
from contracts.settings import Settings

API_KEY_HEADER = "X-API-Key"
api_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_store(request: Request) -> TaskStore:
    store: TaskStore = request.app.state.store
    return store


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[TaskStore, Depends(get_store)]


def key_accepted(settings: Settings, key: str | None) -> bool:
    """True when no API key is configured or `key` is it (compared in constant time)."""
    if settings.api_key is None:
        return True
    expected = settings.api_key.get_secret_value().encode()
    return key is not None and secrets.compare_digest(key.encode(), expected)


async def require_api_key(
    request: Request, key: Annotated[str | None, Security(api_key_header)]
) -> None:
    """When an API key is configured, every route that shows task data or changes state needs it."""
    if key_accepted(request.app.state.settings, key):
        return
    if key is None:
        raise Unauthorized(f"missing {API_KEY_HEADER} header")
    raise Forbidden(f"the {API_KEY_HEADER} header does not match")


Authorized = Depends(require_api_key)
# What `Authorized` raises, for the OpenAPI `responses` of the routers that use it.
AUTHORIZED_RAISES = (Unauthorized, Forbidden)
