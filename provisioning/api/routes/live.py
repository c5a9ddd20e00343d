"""Live gateway state: registrations and calls in progress.

These endpoints are `async def` on purpose: they run on the event loop,
where the gateway owns this state, and the `LiveView` methods are in-memory
and non-blocking (see `LiveView`). No database work happens here.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from provisioning.api.deps import Ctx

router = APIRouter(tags=["live"])

AccountFilter = Annotated[int | None, Query(description="Only entries of this account.")]


def _filter(rows: list[dict[str, Any]], account_id: int | None) -> list[dict[str, Any]]:
    if account_id is None:
        return rows
    return [r for r in rows if r.get("account_id") == account_id]


@router.get("/registrations")
async def registrations(ctx: Ctx, account_id: AccountFilter = None) -> list[dict[str, Any]]:
    return _filter(ctx.live.registrations(), account_id)


@router.get("/calls")
async def calls(ctx: Ctx, account_id: AccountFilter = None) -> list[dict[str, Any]]:
    return _filter(ctx.live.calls(), account_id)
