"""FastAPI dependencies: context, bearer-token auth, DB session, service env.

All sync (FastAPI runs them in its threadpool), so database work never runs
on the event loop the SIP gateway shares with uvicorn.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from provisioning.api.context import ProvisioningContext
from provisioning.services import ServiceEnv

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <VOIPLAB_API_TOKEN>`")


async def get_ctx(request: Request) -> ProvisioningContext:
    ctx: ProvisioningContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ProvisioningContext, Depends(get_ctx)]


async def require_token(ctx: Ctx,
                        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str:
    """401 unless the bearer token matches (constant-time compare)."""
    if creds is None or creds.scheme.lower() != "bearer" or not secrets.compare_digest(
            creds.credentials.encode(), ctx.api_token.encode()):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or invalid bearer token",
                            headers={"WWW-Authenticate": "Bearer"})
    return "api"


def get_session(ctx: Ctx) -> Iterator[Session]:
    with Session(ctx.engine, expire_on_commit=False) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_env(ctx: Ctx, session: SessionDep, actor: Annotated[str, Depends(require_token)]) -> ServiceEnv:
    return ServiceEnv(session=session, now=ctx.now, sip_domain=ctx.sip_domain, catalog=ctx.catalog,
                      bus=ctx.bus, actor=actor, plans=ctx.plans,
                      secrets=ctx.secrets)


EnvDep = Annotated[ServiceEnv, Depends(get_env)]
