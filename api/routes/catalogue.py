"""The task catalogue, for clients and the web page: names, queues and argument schemas."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import StoreDep
from api.schemas import CatalogueEntry

router = APIRouter(tags=["catalogue"])


@router.get("/catalogue", response_model=list[CatalogueEntry], summary="Tasks you can submit")
async def catalogue(store: StoreDep) -> list[CatalogueEntry]:
    return [
        CatalogueEntry(
            name=t.name,
            queue=t.queue,
            description=t.description,
            time_limit_seconds=t.time_limit_seconds,
            max_retries=t.retry.max_retries if t.retry else 0,
            args_schema=dict(t.args_schema),
        )
        for t in (await store.catalogue.tasks()).values()
    ]
