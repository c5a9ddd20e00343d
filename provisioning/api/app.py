"""`create_app(ctx)`: the provisioning HTTP API as a FastAPI application.

The composition root builds a `ProvisioningContext` and serves the app with
an embedded uvicorn on the gateway's event loop. Everything under `/api/v1`
needs the bearer token; `/healthz`, `/openapi.json`, `/docs` and the phone-facing
`/provision/<file>` do not (a device may require HTTP digest there).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI

from provisioning.api import errors
from provisioning.api.context import ProvisioningContext
from provisioning.api.deps import require_token
from provisioning.api.idempotency import IdempotencyMiddleware
from provisioning.api.routes import (
    accounts,
    catalog,
    cdrs,
    devices,
    e911,
    health,
    lab,
    licences,
    live,
    locations,
    plans,
    provision,
    room_kits,
    usage,
    users,
)

API_PREFIX = "/api/v1"


def create_app(ctx: ProvisioningContext) -> FastAPI:
    app = FastAPI(
        title="voiplab provisioning API",
        version="1",
        description="Accounts, users, emergency locations, devices and SIP lines; live gateway "
                    "state and call records. Bearer token on every /api/v1 route.",
    )
    app.state.ctx = ctx
    errors.install(app)
    app.add_middleware(IdempotencyMiddleware, ctx=ctx, prefix=API_PREFIX)
    app.include_router(health.router)
    app.include_router(provision.router)
    v1 = APIRouter(prefix=API_PREFIX, dependencies=[Depends(require_token)])
    for module in (accounts, users, locations, devices, licences, room_kits, live, cdrs, catalog,
                   plans):
        v1.include_router(module.router)
    for module in (usage, lab):  # issue #5: usage summary; lab controls of the running gateway
        v1.include_router(module.router)
    v1.include_router(e911.router)  # issue #4: notices, prompts, outages, emergency records
    v1.include_router(provision.ops_router)
    app.include_router(v1)
    return app
