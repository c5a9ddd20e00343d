"""Map domain errors to HTTP: NotFound → 404, Invalid → 422, Conflict → 409.

422 bodies use FastAPI's own validation shape (`detail[].loc` names the
field), so clients parse one format whether pydantic or a service refused;
service refusals add machine-readable `field` (dotted), `rule` (a service
rule id like "R21" or a hardware check like "lines.max") and `limit`.
409 bodies carry `rule_id` when a service rule (e.g. R12) is the reason.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from provisioning.errors import Conflict, Invalid, NotFound


async def _not_found(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, NotFound)
    return JSONResponse({"detail": exc.message}, status_code=404)


async def _invalid(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Invalid)
    detail = [{"type": "value_error", "loc": ["body", *i.field], "msg": i.message, **i.to_dict()}
              for i in exc.issues]
    return JSONResponse({"detail": detail}, status_code=422)


async def _conflict(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Conflict)
    body: dict[str, object] = {"detail": exc.message, **exc.extra}
    if exc.rule_id:
        body["rule_id"] = exc.rule_id
    if exc.field:
        body["field"] = exc.field
    return JSONResponse(body, status_code=409)


def install(app: FastAPI) -> None:
    app.add_exception_handler(NotFound, _not_found)
    app.add_exception_handler(Invalid, _invalid)
    app.add_exception_handler(Conflict, _conflict)
