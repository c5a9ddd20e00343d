"""Licences: named (one holder) or concurrent (several named users, at most
one registered at a time: R4), and their reassignment (R2).

What the gateway needs is in the directory snapshot: every `LineEntry`
carries `licence_id` / `licence_kind`, and `by_licence` lists a licence's
lines, so a REGISTER from a concurrent licence's line can be refused (403,
R4) while another member's line holds a binding.

R2: a user removed from a licence loses access at once: all their lines get
a new password nobody receives and a new credential generation, and a
`line.credentials_revoked` change per line tells the gateway to drop them.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, col, select

from provisioning import audit
from provisioning.errors import Conflict, Findings, Invalid
from provisioning.events import Change
from provisioning.models import Account, Licence, LicenceMember, Line, User
from provisioning.schemas import LicenceCreate
from provisioning.services.devices import revoke_lines
from provisioning.services.env import ServiceEnv, get_or_404


def members(session: Session, licence_id: int) -> list[int]:
    stmt = select(LicenceMember.user_id).where(LicenceMember.licence_id == licence_id)
    return sorted(session.exec(stmt))


def _check_users(env: ServiceEnv, account_id: int, kind: str, user_ids: Sequence[int],
                 licence_id: int | None) -> None:
    findings = Findings()
    if len(set(user_ids)) != len(user_ids):
        findings.error(("user_ids",), "licence.unique_users", "a user is listed twice")
    if kind == "named" and len(user_ids) != 1:
        findings.error(("user_ids",), "licence.named_holder", "a named licence has exactly one holder", 1)
    users = {u.id: u for u in env.session.exec(select(User).where(col(User.id).in_(list(user_ids))))}
    for i, uid in enumerate(user_ids):
        user = users.get(uid)
        if user is None or user.account_id != account_id:
            findings.error(("user_ids", i), "user.account", f"user {uid} not found in account {account_id}")
    findings.raise_errors()
    held = env.session.exec(select(LicenceMember).where(col(LicenceMember.user_id).in_(list(user_ids)))).all()
    clash = [m for m in held if m.licence_id != licence_id]
    if clash:
        raise Conflict(f"user {clash[0].user_id} already holds licence {clash[0].licence_id}",
                       field="user_ids")


def create_licence(env: ServiceEnv, account_id: int, data: LicenceCreate) -> tuple[Licence, list[int]]:
    get_or_404(env.session, Account, account_id)
    _check_users(env, account_id, data.kind, data.user_ids, None)
    now = env.now()
    licence = Licence(account_id=account_id, kind=data.kind, name=data.name, created_at=now)
    env.session.add(licence)
    env.session.flush()
    assert licence.id is not None
    for uid in data.user_ids:
        env.session.add(LicenceMember(licence_id=licence.id, user_id=uid, since=now))
    audit.record(env.session, at=now, actor=env.actor, action="licence.created", entity="licence",
                 entity_id=licence.id, account_id=account_id, detail=data.model_dump())
    env.commit(Change("licence.created", licence.id, account_id))
    return licence, sorted(data.user_ids)


def reassign_licence(env: ServiceEnv, licence_id: int, user_ids: Sequence[int]) -> tuple[Licence, list[int], list[int]]:
    """Set the licence's users. Returns (licence, members, ids of revoked lines)."""
    s = env.session
    licence = get_or_404(s, Licence, licence_id)
    if not user_ids:
        raise Invalid("user_ids", "a licence keeps at least one user", rule="licence.named_holder", limit=1)
    _check_users(env, licence.account_id, licence.kind, user_ids, licence_id)
    before = members(s, licence_id)
    removed = [u for u in before if u not in user_ids]
    added = [u for u in user_ids if u not in before]
    now = env.now()
    for uid in removed:
        row = s.get(LicenceMember, (licence_id, uid))
        if row is not None:
            s.delete(row)
    s.flush()
    for uid in added:
        s.add(LicenceMember(licence_id=licence_id, user_id=uid, since=now))
    revoked = list(s.exec(select(Line).where(col(Line.user_id).in_(removed)))) if removed else []
    line_changes = revoke_lines(env, revoked)
    audit.record(s, at=now, actor=env.actor, action="licence.reassigned", entity="licence",
                 entity_id=licence_id, account_id=licence.account_id,
                 detail={"before": before, "after": sorted(user_ids), "removed": removed,
                         "revoked_lines": [ln.id for ln in revoked], "rule_id": "R2"})
    env.commit(Change("licence.reassigned", licence_id, licence.account_id), *line_changes)
    return licence, sorted(user_ids), [ln.id for ln in revoked if ln.id is not None]


def get_licence(session: Session, licence_id: int) -> tuple[Licence, list[int]]:
    licence = get_or_404(session, Licence, licence_id)
    return licence, members(session, licence_id)


def list_licences(session: Session, account_id: int) -> list[tuple[Licence, list[int]]]:
    get_or_404(session, Account, account_id)
    rows = session.exec(select(Licence).where(Licence.account_id == account_id).order_by(col(Licence.id)))
    return [(lic, members(session, lic.id)) for lic in rows if lic.id is not None]
