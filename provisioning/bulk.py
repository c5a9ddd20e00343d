"""Bulk device import: thousands of devices in one transaction, checked row by row.

Why not loop over `create_device`: one commit, one audit flush and one
directory update per device costs ~10 ms, so 10,000 devices would take
minutes. Here every row is checked with the same pure rules
(`provisioning.validation`) against data preloaded in a few queries, then
devices, lines and audit events are inserted with executemany, and the
directory gets ONE change (`account.devices_imported`) that reloads the
account's lines in one query.

All-or-nothing by default: any bad row refuses the batch and the report
lists every problem of every row. With `all_or_nothing=False` the good rows
are written and the report lists the rest.

CSV (for the CLI): a header row with `name, hardware_profile, mac, serial,
lines, transport, codecs, ua_policy`; `lines` is `;`-separated extensions of
existing users, each optionally `:fax` and/or `@<port>` (`1001;1002:fax@2`);
`codecs` is `;`-separated.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from pydantic import ValidationError
from sqlalchemy import insert
from sqlmodel import col, select

from provisioning import audit
from provisioning.credentials import generate_password, generate_sip_username, ha1_digests
from provisioning.errors import Findings, Issue
from provisioning.events import Change
from provisioning.models import AuditEvent, Device, Line, User
from provisioning.schemas import DeviceCreate
from provisioning.services.env import ServiceEnv
from provisioning.services.users import locked_account
from provisioning.validation import LinePlan, assign_ports, check_device, resolve_profile

CSV_COLUMNS = ("name", "hardware_profile", "mac", "serial", "lines", "transport", "codecs", "ua_policy")
CHUNK = 1000
Progress = Callable[[str, int, int], None]  # (phase, done, total)


@dataclass(frozen=True, slots=True)
class RowError:
    row: int  # 0-based index in the batch (CSV: data row number, header excluded)
    issue: Issue

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, **self.issue.to_dict()}


@dataclass
class CreatedDevice:
    row: int
    device_id: int
    mac: str | None
    lines: list[dict[str, Any]]  # index, user_id, sip_username, sip_password, port, purpose


@dataclass
class BulkResult:
    created: list[CreatedDevice] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)

    @property
    def refused(self) -> bool:
        return bool(self.errors) and not self.created


class BulkInvalid(Exception):
    """All-or-nothing batch refused: nothing was written."""

    def __init__(self, errors: Sequence[RowError]) -> None:
        super().__init__(f"{len({e.row for e in errors})} row(s) refused")
        self.errors = list(errors)


# --- CSV ---------------------------------------------------------------------------------------

def parse_csv(text: str) -> tuple[list[DeviceCreate | None], list[RowError], list[list[str]]]:
    """Rows as DeviceCreate (None where the row itself is malformed), the errors of
    malformed rows, and each row's line extensions (resolved to users later)."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in ("name", "lines") if c not in (reader.fieldnames or [])]
    if missing:
        return [], [RowError(0, Issue(("csv",), "csv.header", f"missing column(s): {', '.join(missing)}"))], []
    unknown = [c for c in reader.fieldnames or [] if c not in CSV_COLUMNS]
    if unknown:
        return [], [RowError(0, Issue(("csv",), "csv.header", f"unknown column(s): {', '.join(unknown)}",
                                      list(CSV_COLUMNS)))], []
    rows: list[DeviceCreate | None] = []
    errors: list[RowError] = []
    extensions: list[list[str]] = []
    for i, raw in enumerate(reader):
        exts, specs, problems = _parse_lines(raw.get("lines") or "")
        extensions.append(exts)
        for p in problems:
            errors.append(RowError(i, Issue(("lines",), "csv.lines", p)))
        data: dict[str, Any] = {"name": raw.get("name") or "", "lines": specs or [{"user_id": 0}]}
        for key in ("hardware_profile", "mac", "serial", "transport", "ua_policy"):
            if raw.get(key):
                data[key] = raw[key].strip()
        if raw.get("codecs"):
            data["codecs"] = [c for c in raw["codecs"].split(";") if c.strip()]
        try:
            rows.append(DeviceCreate.model_validate(data))
        except ValidationError as exc:
            rows.append(None)
            for err in exc.errors():
                errors.append(RowError(i, Issue(tuple(err["loc"]), "format", err["msg"])))
    return rows, errors, extensions


def _parse_lines(text: str) -> tuple[list[str], list[dict[str, Any]], list[str]]:
    exts: list[str] = []
    specs: list[dict[str, Any]] = []
    problems: list[str] = []
    for item in (t.strip() for t in text.split(";")):
        if not item:
            continue
        head, _, port = item.partition("@")
        ext, _, purpose = head.partition(":")
        spec: dict[str, Any] = {"user_id": 0, "purpose": purpose or "voice"}
        if port:
            if not port.isdigit():
                problems.append(f"port {port!r} of {item!r} is not a number")
                continue
            spec["port"] = int(port)
        exts.append(ext.strip())
        specs.append(spec)
    if not specs:
        problems.append("no lines: list extensions of existing users, e.g. 1001;1002:fax@2")
    return exts, specs, problems


# --- import ------------------------------------------------------------------------------------

def import_devices(env: ServiceEnv, account_id: int, rows: Sequence[DeviceCreate | None], *,
                   extensions: Sequence[Sequence[str]] | None = None, all_or_nothing: bool = True,
                   prior_errors: Iterable[RowError] = (), progress: Progress | None = None) -> BulkResult:
    """Create `rows` in `account_id`. Lines name users by `user_id`, or (CSV) by the
    extensions in `extensions[row]`. Raises BulkInvalid when all-or-nothing fails."""
    locked_account(env, account_id)  # 404 for an unknown account; serialises concurrent imports
    total = len(rows)
    errors = list(prior_errors)
    users_by_ext, users_by_id = _users(env, account_id)
    macs_in_db = _existing_macs(env, [r.mac for r in rows if r is not None and r.mac])
    seen_macs: dict[str, int] = {}
    plans: list[tuple[int, DeviceCreate, Any, list[LinePlan], list[int]]] = []
    bad_rows = {e.row for e in errors}
    for i, row in enumerate(rows):
        if row is None or i in bad_rows:
            continue
        findings = Findings()
        profile = resolve_profile(env.catalog, row.hardware_profile, findings)
        line_plans = assign_ports(profile, [LinePlan(spec.port, spec.purpose) for spec in row.lines])
        if profile is not None or row.hardware_profile is None:
            check_device(env.catalog, profile, mac=row.mac, lines=line_plans, codecs=row.codecs or (),
                         transport=row.transport, findings=findings)
        if row.mac is not None:
            if row.mac in macs_in_db:
                findings.error(("mac",), "mac.unique", f"a device with MAC {row.mac} already exists")
            elif row.mac in seen_macs:
                findings.error(("mac",), "mac.unique", f"MAC {row.mac} also in row {seen_macs[row.mac]}")
            seen_macs.setdefault(row.mac, i)
        user_ids = _row_users(row, extensions[i] if extensions else None, users_by_ext, users_by_id,
                              account_id, findings)
        errors += [RowError(i, issue) for issue in findings.issues if issue.severity == "error"]
        if not any(issue.severity == "error" for issue in findings.issues):
            plans.append((i, row, profile, line_plans, user_ids))
        if progress and (i + 1) % CHUNK == 0:
            progress("checked", i + 1, total)
    if progress:
        progress("checked", total, total)
    errors.sort(key=lambda e: e.row)
    if errors and all_or_nothing:
        raise BulkInvalid(errors)
    result = BulkResult(errors=errors)
    if plans:
        result.created = _write(env, account_id, plans, users_by_id, progress)
        env.commit(Change("account.devices_imported", account_id, account_id))
    return result


class UserRef(NamedTuple):
    """What an import needs of a user: its id and extension."""

    id: int
    extension: str


def _users(env: ServiceEnv, account_id: int) -> tuple[dict[str, UserRef], dict[int, UserRef]]:
    """The account's users by extension and by id, as two columns rather than ORM objects: an
    import into an account of 100,000 users held every `User` in the session (~2.5 KB each)
    for the whole request, and the process kept that peak (issue #6 memory bench)."""
    stmt = select(User.id, User.extension).where(User.account_id == account_id)
    users = [UserRef(uid, ext) for uid, ext in env.session.exec(stmt) if uid is not None]
    return {u.extension: u for u in users}, {u.id: u for u in users}


def _existing_macs(env: ServiceEnv, macs: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(macs), CHUNK):
        chunk = macs[start:start + CHUNK]
        found |= {m for m in env.session.exec(select(Device.mac).where(col(Device.mac).in_(chunk))) if m}
    return found


def _row_users(row: DeviceCreate, exts: Sequence[str] | None, by_ext: dict[str, UserRef],
               by_id: dict[int, UserRef], account_id: int, findings: Findings) -> list[int]:
    ids: list[int] = []
    for j, spec in enumerate(row.lines):
        if exts is not None:
            user = by_ext.get(exts[j]) if j < len(exts) else None
            if user is None:
                findings.error(("lines", j), "user.account",
                               f"no user with extension {exts[j] if j < len(exts) else '?'} in account {account_id}")
                continue
        else:
            user = by_id.get(spec.user_id)
            if user is None:
                findings.error(("lines", j, "user_id"), "user.account",
                               f"user {spec.user_id} not found in account {account_id}")
                continue
        if user.id in ids:
            findings.error(("lines", j), "user.unique_on_device", f"user {user.id} twice on this device")
        ids.append(user.id)
    return ids


def _write(env: ServiceEnv, account_id: int, plans: list[tuple[int, DeviceCreate, Any, list[LinePlan], list[int]]],
           users: dict[int, UserRef], progress: Progress | None) -> list[CreatedDevice]:
    s = env.session
    now = env.now()
    device_rows = [{
        "account_id": account_id, "hardware_profile": profile.id if profile else None, "name": row.name,
        "mac": row.mac, "serial": row.serial, "kind": profile.kind if profile else "unknown", "state": "new",
        "transport": row.transport or (profile.transports[0] if profile and profile.transports else "udp"),
        "codecs": list(row.codecs or ()), "ua_policy": row.ua_policy, "created_at": now,
    } for _, row, profile, _, _ in plans]
    ids: list[int] = list(s.scalars(insert(Device).returning(col(Device.id), sort_by_parameter_order=True), device_rows))
    usernames = _usernames(env, [users[uid].extension for *_, uids in plans for uid in uids])
    line_rows: list[dict[str, Any]] = []
    created: list[CreatedDevice] = []
    audit_rows: list[dict[str, Any]] = []
    names = iter(usernames)
    for done, ((i, row, profile, line_plans, uids), device_id) in enumerate(zip(plans, ids, strict=True), 1):
        shown = []
        for index, (plan, uid) in enumerate(zip(line_plans, uids, strict=True), start=1):
            username, password = next(names), generate_password()
            ha1 = ha1_digests(username, env.sip_domain, password)
            line_rows.append({"device_id": device_id, "user_id": uid, "index": index, "sip_username": username,
                              "realm": env.sip_domain, "ha1_md5": ha1.md5, "ha1_sha256": ha1.sha256,
                              "password_sealed": env.secrets.seal(password) if env.secrets else None,
                              "credential_generation": 1, "port": plan.port, "purpose": plan.purpose,
                              "created_at": now, "password_set_at": now})
            shown.append({"index": index, "user_id": uid, "sip_username": username, "sip_password": password,
                          "port": plan.port, "purpose": plan.purpose})
        created.append(CreatedDevice(i, device_id, row.mac, shown))
        audit_rows.append({"at": now, "actor": env.actor, "action": "device.created", "entity": "device",
                           "entity_id": device_id, "account_id": account_id,
                           "detail": audit.redact({"hardware_profile": profile.id if profile else None,
                                                   "name": row.name, "mac": row.mac, "serial": row.serial,
                                                   "bulk_row": i, "lines": [{k: v for k, v in ln.items()
                                                                             if k != "sip_password"}
                                                                            for ln in shown]})})
        if done % CHUNK == 0:  # insert as we go: 20,000 rows' bound parameters at once set the peak
            _insert(env, line_rows, audit_rows)
            if progress:
                progress("written", done, len(plans))
    _insert(env, line_rows, audit_rows)
    if progress:
        progress("written", len(plans), len(plans))
    return created


def _insert(env: ServiceEnv, line_rows: list[dict[str, Any]], audit_rows: list[dict[str, Any]]) -> None:
    """Write the rows gathered so far (same transaction) and empty the lists."""
    if line_rows:
        env.session.execute(insert(Line), line_rows)
    if audit_rows:
        env.session.execute(insert(AuditEvent), audit_rows)
    line_rows.clear()
    audit_rows.clear()


def _usernames(env: ServiceEnv, extensions: list[str]) -> list[str]:
    """Unique `<ext>-<suffix>` names: generated, then checked against the database
    in chunks and regenerated on the (rare) collision."""
    names = [generate_sip_username(ext) for ext in extensions]
    while True:
        taken: set[str] = set()
        for start in range(0, len(names), CHUNK):
            chunk = names[start:start + CHUNK]
            taken |= set(env.session.exec(select(Line.sip_username).where(col(Line.sip_username).in_(chunk))))
        seen: set[str] = set()
        clash = False
        for k, name in enumerate(names):
            if name in taken or name in seen:
                names[k] = generate_sip_username(extensions[k])
                clash = True
            seen.add(names[k])
        if not clash:
            return names


__all__ = ["CSV_COLUMNS", "BulkInvalid", "BulkResult", "CreatedDevice", "RowError", "import_devices",
           "parse_csv"]
