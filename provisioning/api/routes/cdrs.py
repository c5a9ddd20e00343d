from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from provisioning.api.deps import Ctx
from provisioning.api.routes.common import Limit, Offset
from provisioning.models import Disposition
from provisioning.schemas import CdrOut

router = APIRouter(tags=["call records"])


@router.get("/cdrs", response_model=list[CdrOut])
def list_cdrs(ctx: Ctx, account_id: Annotated[int | None, Query()] = None,
              call_id: Annotated[str | None, Query(max_length=255)] = None,
              disposition: Annotated[Disposition | None, Query()] = None,
              limit: Limit = 100, offset: Offset = 0) -> list[CdrOut]:
    rows = ctx.cdr_store().list(account_id=account_id, call_id=call_id, disposition=disposition,
                                limit=limit, offset=offset)
    return [CdrOut.model_validate(r) for r in rows]
