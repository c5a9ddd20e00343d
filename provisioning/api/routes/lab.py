"""Lab controls of the running gateway: simulated PSTN rules and calls, conference rooms
and their live roster (R30), flood-guard bans (R27), and the PSAP's call log (#4).

Why `async def`: the state lives in the gateway on the event loop and the
`LabControl` methods are in-memory and non-blocking (see `LabControl`), so
they are called right there; the one database question (is the organizer a
named user of the account) goes to the threadpool.

PSTN patterns contain `*` and `+`, so they travel in request bodies
(`POST /pstn/rules:delete`), never in URL paths. Without a gateway
(`ctx.lab` is None) every route answers 503 "gateway not running".
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool

from provisioning.api.context import LabConflict, LabControl
from provisioning.api.deps import Ctx
from provisioning.errors import Conflict, Invalid, NotFound
from provisioning.models import Account, User

router = APIRouter(tags=["lab"])

GATEWAY_NOT_RUNNING = "gateway not running"


async def get_lab(ctx: Ctx) -> LabControl:
    if ctx.lab is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, GATEWAY_NOT_RUNNING)
    return ctx.lab


Lab = Annotated[LabControl, Depends(get_lab)]
RoomNumber = Annotated[str, Path(min_length=1, max_length=32, description="The room's dial-in number.")]


@contextmanager
def lab_errors(field: str | None = None) -> Iterator[None]:
    """Map what a `LabControl` raises to the API's error shapes: LabConflict 409 (with
    `rule_id`), LookupError 404, ValueError 422 (naming `field` of the body when given)."""
    try:
        yield
    except LabConflict as exc:
        raise Conflict(exc.message, rule_id=exc.rule_id) from None
    except LookupError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, _message(exc)) from None
    except ValueError as exc:
        raise Invalid((field,) if field else (), _message(exc), rule="lab") from None


def _message(exc: Exception) -> str:
    # KeyError's str() is the repr of its key; show the bare message.
    return str(exc.args[0]) if exc.args else type(exc).__name__


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class PstnRuleIn(_Body):
    pattern: str = Field(min_length=1, max_length=32, examples=["*0486", "+44*", "+1415555XXXX"])
    behaviour: str | dict[str, Any] = Field(
        description='A preset ("answer", "busy", "no-answer", "not-found", "answer-hangup", …) or a mapping '
                    'such as {"action": "answer", "ring": 2, "hang_up_after": 10}.',
        examples=["busy", {"action": "reject", "status": 486}])
    note: str = Field(default="", max_length=200)


class PatternIn(_Body):
    pattern: str = Field(min_length=1, max_length=32)


class ConferenceRoomIn(_Body):
    account_id: int
    organizer: str = Field(min_length=1, max_length=254, description="A named user ID of the account.")
    number: str | None = Field(default=None, pattern=r"^[0-9]{3,15}$",
                               description="Dial-in number (generated when absent); unique (R30).")
    pin: str | None = Field(default=None, pattern=r"^[0-9]{4,10}$",
                            description="Organizer PIN (generated when absent).")
    name: str | None = Field(default=None, max_length=200)


class BanKeyIn(_Body):
    key: str = Field(min_length=1, max_length=300)


def _not_found(what: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, what)


# --- simulated PSTN ---------------------------------------------------------------------------

@router.get("/pstn/rules")
async def pstn_rules(lab: Lab) -> list[dict[str, Any]]:
    """The rule book: rules set here first, then the default table."""
    return lab.pstn_rules()


@router.post("/pstn/rules")
async def set_pstn_rule(body: PstnRuleIn, lab: Lab) -> dict[str, Any]:
    """Add a rule, or replace the one with the same pattern."""
    with lab_errors():
        return lab.set_pstn_rule(body.pattern, body.behaviour, body.note)


@router.post("/pstn/rules:delete")
async def delete_pstn_rule(body: PatternIn, lab: Lab) -> dict[str, Any]:
    with lab_errors("pattern"):
        deleted = lab.delete_pstn_rule(body.pattern)
    if not deleted:
        raise _not_found(f"no rule with pattern {body.pattern} was set through the API")
    return {"deleted": body.pattern}


@router.delete("/pstn/rules", status_code=status.HTTP_204_NO_CONTENT)
async def clear_pstn_rules(lab: Lab) -> Response:
    """Remove every rule set through the API; the default table stays."""
    lab.clear_pstn_rules()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/pstn/calls")
async def pstn_calls(lab: Lab, number: Annotated[str | None, Query(max_length=32)] = None,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    return lab.pstn_calls(number, limit)


@router.post("/pstn/calls/{call_id:path}:hangup")
async def pstn_hang_up(call_id: str, lab: Lab) -> dict[str, Any]:
    """The PSTN side hangs up (BYE, or a final answer while it rings). `{call_id}` may hold `/`."""
    with lab_errors():
        ended = lab.pstn_hang_up(call_id)
    if not ended:
        raise _not_found(f"no live PSTN call {call_id}")
    return {"hung_up": call_id}


# --- conference bridge (R30) ------------------------------------------------------------------

def check_organizer(engine: Engine, account_id: int, organizer: str) -> None:
    """NotFound for an unknown account, Invalid unless `organizer` is a named user of it (R30)."""
    with Session(engine) as session:
        if session.get(Account, account_id) is None:
            raise NotFound("account", account_id)
        found = session.exec(select(User.id).where(User.account_id == account_id,
                                                   User.named_user_id == organizer)).first()
    if found is None:
        raise Invalid("organizer", f"{organizer} is not a named user of account {account_id} "
                                   "(R30: a room belongs to an organizer of the account)", rule="R30")


@router.get("/conferences")
async def conference_rooms(lab: Lab, account_id: Annotated[int | None, Query()] = None) -> list[dict[str, Any]]:
    return lab.conference_rooms(account_id)


@router.post("/conferences", status_code=status.HTTP_201_CREATED)
async def create_conference_room(body: ConferenceRoomIn, ctx: Ctx, lab: Lab) -> dict[str, Any]:
    """A room for an organizer of the account; the answer holds the organizer PIN (shown once here)."""
    await run_in_threadpool(check_organizer, ctx.engine, body.account_id, body.organizer)
    if body.number is not None and lab.conference_room(body.number) is not None:
        raise Conflict(f"room number {body.number} is taken (R30: room numbers are unique)", rule_id="R30",
                       field="number")
    with lab_errors():
        return lab.create_conference_room(body.account_id, body.organizer, body.number, body.pin, body.name)


@router.get("/conferences/{number}")
async def conference_room(number: RoomNumber, lab: Lab) -> dict[str, Any]:
    room = lab.conference_room(number)
    if room is None:
        raise _not_found(f"conference room {number} not found")
    return room


@router.delete("/conferences/{number}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_conference_room(number: RoomNumber, lab: Lab) -> Response:
    """Remove the room; everyone in it is hung up first."""
    if not lab.delete_conference_room(number):
        raise _not_found(f"conference room {number} not found")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/conferences/{number}/roster")
async def conference_roster(number: RoomNumber, lab: Lab) -> list[dict[str, Any]]:
    roster = lab.conference_roster(number)
    if roster is None:
        raise _not_found(f"conference room {number} not found")
    return roster


@router.post("/conferences/{number}/participants/{participant_id}:kick")
async def conference_kick(number: RoomNumber, participant_id: Annotated[str, Path(max_length=64)],
                          lab: Lab) -> dict[str, Any]:
    with lab_errors():
        kicked = lab.conference_kick(number, participant_id)
    if not kicked:
        raise _not_found(f"participant {participant_id} is not in conference room {number}")
    return {"kicked": participant_id, "room": number}


# --- flood guard (R27) and PSAP (#4) ----------------------------------------------------------

@router.get("/fraud/bans")
async def fraud_bans(lab: Lab) -> list[dict[str, Any]]:
    """Temporary bans the flood guard (R27) has in force: key, until, kind."""
    return lab.fraud_bans()


@router.post("/fraud/bans:clear")
async def clear_fraud_ban(body: BanKeyIn, lab: Lab) -> dict[str, Any]:
    with lab_errors("key"):
        cleared = lab.clear_fraud_ban(body.key)
    if not cleared:
        raise _not_found(f"{body.key} is not banned")
    return {"cleared": body.key}


@router.get("/psap/calls")
async def psap_calls(lab: Lab, role: Annotated[str | None, Query(max_length=32)] = None,
                     verdict: Annotated[str | None, Query(max_length=16)] = None,
                     device_id: Annotated[str | None, Query(max_length=64)] = None) -> list[dict[str, Any]]:
    return lab.psap_calls(role, verdict, device_id)
