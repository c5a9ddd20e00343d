"""Directory snapshot: the read model the gateway consults on the SIP hot path.

Why: a REGISTER or INVITE must never wait for the database. The gateway
reads `directory.snapshot` (one attribute read, atomic) and looks entries up
in immutable maps; provisioning changes reach it through `Change` events.

- `load_all()` builds the whole snapshot once at start (O(N)).
- `apply(change)` re-reads only the rows the change names (a device's lines,
  a user's lines, one account …) and builds the next snapshot with
  `FrozenMap.evolve`, which copies only the touched shards: O(affected), not
  O(N), so 10k devices cost the same per change as 10.

E911 (issue #4): `devices` and `locations` give the emergency router what
`gateway.emergency.EmergencyContext` needs (device state, R15 forwarding,
R13 stale flag and last fingerprint, the dispatchable location with its
callback and any R11 outage); `registered_location(device_uri)` is the PSAP
simulator's lookup. They follow `device.*`, `location.*`, `outage.*` and
`account.*` changes like everything else.

Threading: `apply` does database I/O, so call it from a worker thread (the
`ChangeBus` already calls subscribers on the publishing API thread), never on
the event loop. Writers are serialised by a lock, and each apply re-reads the
current rows, so the newest committed state always wins. Readers need no lock:
they keep using whichever snapshot they grabbed.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, exists
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from e911.civic import CIVIC_FIELDS
from e911.moves import NetworkFingerprint
from e911.pidf import parse_device_uri
from provisioning.events import R13_ONLY, Change
from provisioning.frozenmap import FrozenMap
from provisioning.models import (
    Account,
    Device,
    DeviceE911,
    E911Notice,
    Licence,
    LicenceMember,
    Line,
    Location,
    SiteOutage,
    User,
)

K = TypeVar("K")


@dataclass(frozen=True, slots=True)
class AccountEntry:
    """`plan` is a plan id (`provisioning.plans.PlanCatalog.get`); `deposit_usd` the
    deposits received (R24); `allowed_prefixes` lift the plan's blocked prefixes (R25)."""

    id: int
    name: str
    plan: str
    region: str
    status: str
    deposit_usd: int = 0
    allowed_prefixes: tuple[str, ...] = ()
    # --- issue #4 (E911) ---
    stale_policy: str = "use_last"  # R13: "use_last" | "national_centre"
    notification_url: str | None = None  # Kari's Law webhook (provisioning.notifier)


@dataclass(frozen=True, slots=True)
class UserEntry:
    id: int
    account_id: int
    named_user_id: str
    display_name: str
    extension: str


@dataclass(frozen=True, slots=True)
class LineEntry:
    """Everything the registrar and router need about one SIP line, denormalised."""

    sip_username: str
    realm: str
    ha1_md5: str
    ha1_sha256: str
    line_id: int
    line_index: int
    device_id: int
    device_state: str
    device_kind: str
    location_id: int | None
    user_id: int
    extension: str
    display_name: str
    named_user_id: str
    account_id: int
    # --- issue #3 ---
    hardware_profile: str | None = None  # catalog id (line/port limits, fax capability)
    port: int | None = None  # ATA FXS port
    purpose: str = "voice"  # "fax" lines: R20 fax duration cap
    credential_generation: int = 1  # R2: bumped on rotation/reassignment/revocation
    licence_id: int | None = None  # R4: the holder's licence, if any
    licence_kind: str | None = None  # "named" | "concurrent"


@dataclass(frozen=True, slots=True)
class LicenceEntry:
    """A licence and its users (R4: a concurrent licence admits one registered user at a time)."""

    id: int
    account_id: int
    kind: str
    user_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class DeviceEntry:
    """A device as the emergency router sees it (issue #4).

    - `location_forwarding` (R15): the device is active, has a location, and
      its activation notice was acknowledged: location and callback go to
      the PSAP automatically. Off → national centre without location.
    - `location_stale` (R13): the device registered from another network
      than last time and nobody has confirmed or updated its location yet.
    - `last_fingerprint`: the network of its last recorded REGISTER
      (`e911.moves`), so the registrar can compare on the hot path and
      submit only changes to `E911Store.record_registrations`.
    """

    id: int
    account_id: int
    kind: str
    state: str
    mac: str | None
    location_id: int | None
    location_forwarding: bool
    location_stale: bool
    last_fingerprint: NetworkFingerprint | None
    name: str = ""
    stale_reason: str | None = None


@dataclass(frozen=True, slots=True)
class LocationEntry:
    """A registered location (issue #4): `civic` holds the RFC 5139 fields that are set
    (lower-case names, schema order, read-only), `callback_number` is E.164, `outage` the
    active simulated outage at the site (R11: "power" before "internet" before
    "network_blocked" when several run), `outages` all of them."""

    id: int
    account_id: int
    civic: Mapping[str, str]
    callback_number: str
    country: str
    outage: str | None
    valid: bool = True  # a dispatchable location when last validated
    name: str | None = None
    outages: tuple[str, ...] = ()


LineIndex = FrozenMap[Any, tuple[LineEntry, ...]]


def _empty() -> FrozenMap[Any, Any]:
    return FrozenMap()


@dataclass(frozen=True, slots=True)
class DirectorySnapshot:
    """One consistent view. All maps are immutable; tuples of lines are ordered
    by line id.

    - `lines`: sip_username → LineEntry (digest auth, registrar)
    - `lines_by_id`: line id → LineEntry
    - `by_user`: user id → lines; `by_device`: device id → lines
    - `users`: user id → UserEntry; `user_by_extension`: (account_id, extension) → user id
      (a known extension without lines is "480 not registered", not "404 unknown");
      `extension_lines()` goes through these two (no map of its own: at 100,000 lines a
      third index costs ~15 MB); `user_counts`: account id → users (R26/R31 fair use)
    - `accounts`: account id → AccountEntry (status, plan, region, deposit, allow-list)
    - `licences`: licence id → LicenceEntry; `by_licence`: licence id → lines of its users
    - `devices`: device id → DeviceEntry; `device_by_mac`: MAC → device id (E911, issue #4)
    - `locations`: location id → LocationEntry; `devices_by_location`: location id → device ids
    """

    version: int = 0
    accounts: FrozenMap[int, AccountEntry] = field(default_factory=_empty)
    users: FrozenMap[int, UserEntry] = field(default_factory=_empty)
    user_by_extension: FrozenMap[tuple[int, str], int] = field(default_factory=_empty)
    user_counts: FrozenMap[int, int] = field(default_factory=_empty)
    lines: FrozenMap[str, LineEntry] = field(default_factory=_empty)
    lines_by_id: FrozenMap[int, LineEntry] = field(default_factory=_empty)
    by_user: FrozenMap[int, tuple[LineEntry, ...]] = field(default_factory=_empty)
    by_device: FrozenMap[int, tuple[LineEntry, ...]] = field(default_factory=_empty)
    licences: FrozenMap[int, LicenceEntry] = field(default_factory=_empty)
    by_licence: FrozenMap[int, tuple[LineEntry, ...]] = field(default_factory=_empty)
    devices: FrozenMap[int, DeviceEntry] = field(default_factory=_empty)
    device_by_mac: FrozenMap[str, int] = field(default_factory=_empty)
    locations: FrozenMap[int, LocationEntry] = field(default_factory=_empty)
    devices_by_location: FrozenMap[int, tuple[int, ...]] = field(default_factory=_empty)

    def line(self, sip_username: str) -> LineEntry | None:
        return self.lines.get(sip_username)

    def extension_lines(self, account_id: int, extension: str) -> tuple[LineEntry, ...]:
        """The lines of the account's user with this extension, by line id (routing)."""
        user_id = self.user_by_extension.get((account_id, extension))
        if user_id is None:
            return ()
        lines = self.by_user.get(user_id, ())
        if all(e.account_id == account_id for e in lines):
            return lines
        return tuple(e for e in lines if e.account_id == account_id)

    def user_count(self, account_id: int) -> int:
        """Users in the account (the fair-use basis of R26/R31)."""
        return self.user_counts.get(account_id, 0)

    def device_location(self, device_id: int) -> LocationEntry | None:
        """The registered location of a device, or None."""
        device = self.devices.get(device_id)
        if device is None or device.location_id is None:
            return None
        return self.locations.get(device.location_id)

    def device_for_uri(self, device_uri: str) -> DeviceEntry | None:
        """The device a PIDF-LO's `<dm:deviceID>` names (`mac:…` or `urn:voiplab:device:N`)."""
        parsed = parse_device_uri(device_uri)
        if parsed is None:
            return None
        kind, value = parsed
        device_id = self.device_by_mac.get(str(value)) if kind == "mac" else value
        return self.devices.get(device_id) if isinstance(device_id, int) else None

    def registered_location(self, device_uri: str) -> dict[str, str] | None:
        """The PSAP simulator's lookup (`gateway.psap.ExpectedLookup`): the device's registered
        civic fields plus `callback_number`, or None for an unknown device or one without a
        location. Memory only, never blocks."""
        device = self.device_for_uri(device_uri)
        location = self.device_location(device.id) if device is not None else None
        if location is None:
            return None
        return {**location.civic, "callback_number": location.callback_number}


# Rows are read in batches, not buffered whole: at 100,000 lines a buffered result (a Row per
# line next to the entries built from it) set the start-up peak, and the process kept that peak.
_BATCH = 2_000
_USER_COLUMNS = (User.id, User.account_id, User.named_user_id, User.display_name, User.extension)


def _fetch_users(session: Session, where: ColumnElement[bool] | None = None) -> list[UserEntry]:
    """User entries from plain rows (no ORM objects: 100,000 users load in a fraction of the
    time and leave no identity map behind)."""
    stmt = select(*_USER_COLUMNS)  # type: ignore[call-overload]
    if where is not None:
        stmt = stmt.where(where)
    return [UserEntry(*row) for row in session.exec(stmt.execution_options(yield_per=_BATCH))]


def _count_users(users: Iterable[UserEntry]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for u in users:
        counts[u.account_id] = counts.get(u.account_id, 0) + 1
    return counts


def _recount(counts: FrozenMap[int, int], deltas: Mapping[int, int]) -> FrozenMap[int, int]:
    """`counts` moved by `deltas` (account id → users added, negative for removed); an account
    left with none drops out, and a zero delta (an edit) copies nothing."""
    now = {a: counts.get(a, 0) + d for a, d in deltas.items() if d}
    return counts.evolve({a: n for a, n in now.items() if n > 0}, [a for a, n in now.items() if n <= 0])


def _account_entry(account: Account) -> AccountEntry:
    assert account.id is not None
    return AccountEntry(id=account.id, name=account.name, plan=account.plan,
                        region=account.region, status=account.status,
                        deposit_usd=account.deposit_usd,
                        allowed_prefixes=tuple(account.allowed_prefixes or ()),
                        stale_policy=account.stale_policy, notification_url=account.notification_url)


# --- E911 entries (issue #4) ------------------------------------------------------------------

_OUTAGE_ORDER = ("power", "internet", "network_blocked")

_ACKED = exists().where(col(E911Notice.device_id) == col(Device.id),
                        col(E911Notice.acknowledged_at).is_not(None))
_PENDING = exists().where(col(E911Notice.device_id) == col(Device.id),
                          col(E911Notice.acknowledged_at).is_(None))
_DEVICE_COLUMNS = (
    Device.id, Device.account_id, Device.kind, Device.state, Device.mac, Device.location_id, Device.name,
    DeviceE911.location_stale, DeviceE911.stale_reason, DeviceE911.last_fingerprint,
    _ACKED.label("acked"), _PENDING.label("pending"),
)


def _fingerprint(raw: Any) -> NetworkFingerprint | None:
    if not isinstance(raw, dict) or "subnet" not in raw or "contact_host" not in raw:
        return None
    return NetworkFingerprint(str(raw["subnet"]), str(raw["contact_host"]))


def _fetch_devices(session: Session, where: ColumnElement[bool] | None = None) -> list[DeviceEntry]:
    """Device entries in one statement (device + its E911 row + notice flags)."""
    stmt = (select(*_DEVICE_COLUMNS)  # type: ignore[call-overload]
            .outerjoin(DeviceE911, col(DeviceE911.device_id) == col(Device.id)))
    if where is not None:
        stmt = stmt.where(where)
    entries = []
    for (did, account_id, kind, state, mac, location_id, name, stale, stale_reason, fingerprint,
         acked, pending) in session.exec(stmt):
        forwarding = state == "active" and location_id is not None and bool(acked) and not pending
        entries.append(DeviceEntry(id=did, account_id=account_id, kind=kind, state=state, mac=mac,
                                   location_id=location_id, location_forwarding=forwarding,
                                   location_stale=bool(stale), last_fingerprint=_fingerprint(fingerprint),
                                   name=name, stale_reason=stale_reason if stale else None))
    return entries


def _fetch_locations(session: Session, where: ColumnElement[bool] | None = None) -> list[LocationEntry]:
    stmt = select(Location)
    if where is not None:
        stmt = stmt.where(where)
    rows = list(session.exec(stmt))
    ids = [r.id for r in rows if r.id is not None]
    outages: dict[int, set[str]] = {i: set() for i in ids}
    if ids:
        for lid, kind in session.exec(select(SiteOutage.location_id, SiteOutage.kind)
                                      .where(col(SiteOutage.location_id).in_(ids),
                                             col(SiteOutage.ended_at).is_(None))):
            outages[lid].add(kind)
    entries = []
    for r in rows:
        if r.id is None:
            continue
        kinds = tuple(k for k in _OUTAGE_ORDER if k in outages[r.id]) + tuple(
            sorted(outages[r.id] - set(_OUTAGE_ORDER)))
        civic = {name: value for name in CIVIC_FIELDS if (value := getattr(r, name)) not in (None, "")}
        entries.append(LocationEntry(id=r.id, account_id=r.account_id, civic=MappingProxyType(civic),
                                     callback_number=r.callback_number, country=r.country,
                                     outage=kinds[0] if kinds else None, valid=r.validation_status == "valid",
                                     name=r.name, outages=kinds))
    return entries


def _by_location(devices: Iterable[DeviceEntry]) -> dict[int, tuple[int, ...]]:
    groups: dict[int, list[int]] = {}
    for d in devices:
        if d.location_id is not None:
            groups.setdefault(d.location_id, []).append(d.id)
    return {k: tuple(sorted(v)) for k, v in groups.items()}


def replace_devices(snap: DirectorySnapshot, ids: Iterable[int], new: list[DeviceEntry]) -> DirectorySnapshot:
    """Snapshot with the entries of devices `ids` replaced by `new` (missing ones removed)."""
    ids = set(ids) | {d.id for d in new}
    old = [e for i in ids if (e := snap.devices.get(i)) is not None]
    arriving = {d.id: d for d in new}
    if all(arriving.get(e.id) == e for e in old) and len(old) == len(arriving):
        return snap  # nothing the snapshot shows changed: keep every shard
    mac_updates = {d.mac: d.id for d in new if d.mac and snap.device_by_mac.get(d.mac) != d.id}
    mac_deletes = [e.mac for e in old if e.mac and (e.id not in arriving or arriving[e.id].mac != e.mac)]
    before_loc = {e.id: e.location_id for e in old}
    moved = [i for i in ids if before_loc.get(i) != (arriving[i].location_id if i in arriving else None)]
    touched = {before_loc.get(i) for i in moved} | {arriving[i].location_id for i in moved if i in arriving}
    loc_updates: dict[int, tuple[int, ...]] = {}
    loc_deletes: list[int] = []
    for lid in touched - {None}:
        assert lid is not None
        kept = [i for i in snap.devices_by_location.get(lid, ()) if i not in moved]
        members = tuple(sorted(kept + [i for i in moved if i in arriving and arriving[i].location_id == lid]))
        if members:
            loc_updates[lid] = members
        else:
            loc_deletes.append(lid)
    return replace(
        snap,
        devices=snap.devices.evolve(arriving, [i for i in ids if i not in arriving]),
        device_by_mac=snap.device_by_mac.evolve(mac_updates, mac_deletes),
        devices_by_location=snap.devices_by_location.evolve(loc_updates, loc_deletes),
    )


def _refresh_location(snap: DirectorySnapshot, session: Session, location_id: int) -> DirectorySnapshot:
    now = _fetch_locations(session, col(Location.id) == location_id)
    return replace(snap, locations=snap.locations.evolve({e.id: e for e in now},
                                                         () if now else [location_id]))


# Columns in LineEntry field order: plain rows, no ORM objects (10x faster to load).
_LINE_COLUMNS = (
    Line.sip_username, Line.realm, Line.ha1_md5, Line.ha1_sha256, Line.id, Line.index,
    Device.id, Device.state, Device.kind, Device.location_id, User.id, User.extension,
    User.display_name, User.named_user_id, Device.account_id, Device.hardware_profile, Line.port,
    Line.purpose, Line.credential_generation, Licence.id, Licence.kind,
)


def _fetch_lines(session: Session, where: ColumnElement[bool] | None = None,
                 users: Mapping[int, UserEntry] | None = None) -> list[LineEntry]:
    """Line entries for the rows `where` selects; `users` (the snapshot's, already holding any
    user this change touched) lends its strings and ids, so a line does not carry its own
    copies of what its user entry holds."""
    stmt = (select(*_LINE_COLUMNS)  # type: ignore[call-overload]
            .join(Device, col(Line.device_id) == col(Device.id))
            .join(User, col(Line.user_id) == col(User.id))
            .outerjoin(LicenceMember, col(LicenceMember.user_id) == col(User.id))
            .outerjoin(Licence, col(Licence.id) == col(LicenceMember.licence_id)))
    if where is not None:
        stmt = stmt.where(where)
    ids: dict[int, int] = {}
    return [_line_entry(row, users or {}, ids) for row in session.exec(stmt.execution_options(yield_per=_BATCH))]


# Memory (issue #6: 100,000 lines). Columns whose values repeat across lines (realm, device
# state and kind, profile id, purpose, licence kind) are interned: one string each instead of a
# copy per row (~30 MB). Ids that repeat (device, location, account, licence) share one int
# object per fetch (16 lines of a T54W name one device), and the user's id, extension, display
# name and named user id are the user entry's own objects (~250 B a line).
_SHARED_COLUMNS = (1, 7, 8, 15, 17, 20)
_SHARED_IDS = (6, 9, 14, 19)
_USER_ID, _EXTENSION, _DISPLAY_NAME, _NAMED_USER_ID = 10, 11, 12, 13


def _line_entry(row: Any, users: Mapping[int, UserEntry], ids: dict[int, int]) -> LineEntry:
    values = list(row)
    for i in _SHARED_COLUMNS:
        value = values[i]
        if value is not None:
            values[i] = sys.intern(value)
    for i in _SHARED_IDS:
        value = values[i]
        if value is not None:
            values[i] = ids.setdefault(value, value)
    user = users.get(values[_USER_ID])
    if user is not None:
        values[_USER_ID] = user.id
        if user.extension == values[_EXTENSION]:
            values[_EXTENSION] = user.extension
        if user.display_name == values[_DISPLAY_NAME]:
            values[_DISPLAY_NAME] = user.display_name
        if user.named_user_id == values[_NAMED_USER_ID]:
            values[_NAMED_USER_ID] = user.named_user_id
    return LineEntry(*values)


def _group(entries: Iterable[LineEntry], key: Callable[[LineEntry], K]) -> dict[K, tuple[LineEntry, ...]]:
    """Group by `key`; entries whose key is None are left out (e.g. lines without a licence)."""
    groups: dict[K, list[LineEntry]] = {}
    for e in entries:
        k = key(e)
        if k is not None:
            groups.setdefault(k, []).append(e)
    return {k: tuple(sorted(v, key=lambda e: e.line_id)) for k, v in groups.items()}


def _by_licence(entries: Iterable[LineEntry]) -> dict[int, tuple[LineEntry, ...]]:
    """Lines of licensed users only (lines without a licence are left out)."""
    return {k: v for k, v in _group(entries, lambda e: e.licence_id).items() if k is not None}


def _reindex(index: LineIndex, key: Callable[[LineEntry], Any],
             old: Iterable[LineEntry], new: list[LineEntry]) -> LineIndex:
    """Update a grouped index for lines leaving (`old`) and arriving (`new`).
    Linear in len(old) + len(new) (a bulk import brings thousands at once)."""
    old = list(old)
    touched_ids = {e.line_id for e in old} | {e.line_id for e in new}
    arriving: dict[Any, list[LineEntry]] = {}
    for e in new:
        k = key(e)
        if k is not None:
            arriving.setdefault(k, []).append(e)
    keys = ({key(e) for e in old} | set(arriving)) - {None}
    updates: dict[Any, tuple[LineEntry, ...]] = {}
    deletes: list[Any] = []
    for k in keys:
        kept = [e for e in index.get(k, ()) if e.line_id not in touched_ids]
        merged = tuple(sorted(kept + arriving.get(k, []), key=lambda e: e.line_id))
        if merged:
            updates[k] = merged
        else:
            deletes.append(k)
    return index.evolve(updates, deletes)


def replace_lines(snap: DirectorySnapshot, old: Iterable[LineEntry],
                  new: list[LineEntry]) -> DirectorySnapshot:
    """Snapshot with the `old` line entries swapped for `new` in every index. Entries equal to
    the ones they replace are left out: the snapshot keeps the objects it has (a bulk import
    re-reads the whole account, and copying every shard for it would churn the heap)."""
    held = {e.line_id: e for e in old}
    same = {e.line_id for e in new if held.get(e.line_id) == e}
    if same:
        old = [e for e in held.values() if e.line_id not in same]
        new = [e for e in new if e.line_id not in same]
    else:
        old = list(held.values())
    if not old and not new:
        return snap
    new_names = {e.sip_username for e in new}
    new_ids = {e.line_id for e in new}
    return replace(
        snap,
        lines=snap.lines.evolve({e.sip_username: e for e in new},
                                [e.sip_username for e in old if e.sip_username not in new_names]),
        lines_by_id=snap.lines_by_id.evolve({e.line_id: e for e in new},
                                            [e.line_id for e in old if e.line_id not in new_ids]),
        by_user=_reindex(snap.by_user, lambda e: e.user_id, old, new),
        by_device=_reindex(snap.by_device, lambda e: e.device_id, old, new),
        by_licence=_reindex(snap.by_licence, lambda e: e.licence_id, old, new),
    )


def _licence_entries(session: Session, where: ColumnElement[bool] | None = None) -> list[LicenceEntry]:
    stmt = select(Licence)
    if where is not None:
        stmt = stmt.where(where)
    licences = list(session.exec(stmt))
    ids = [lic.id for lic in licences if lic.id is not None]
    owners: dict[int, list[int]] = {i: [] for i in ids}
    if ids:
        for lid, uid in session.exec(select(LicenceMember.licence_id, LicenceMember.user_id)
                                     .where(col(LicenceMember.licence_id).in_(ids))):
            owners[lid].append(uid)
    return [LicenceEntry(id=lic.id, account_id=lic.account_id, kind=lic.kind,
                         user_ids=tuple(sorted(owners[lic.id]))) for lic in licences if lic.id is not None]


class Directory:
    """Holds the current `DirectorySnapshot`; see the module docstring."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._snapshot = DirectorySnapshot()

    @property
    def snapshot(self) -> DirectorySnapshot:
        return self._snapshot

    @contextmanager
    def _session(self, session: Session | None) -> Iterator[Session]:
        if session is not None:
            yield session
            return
        with Session(self._engine) as own:
            yield own

    def load_all(self, session: Session | None = None) -> DirectorySnapshot:
        """Build the whole snapshot from the database (start-up, or resync)."""
        with self._lock, self._session(session) as s:
            accounts = [_account_entry(a) for a in s.exec(select(Account))]
            users = _fetch_users(s)
            entries = _fetch_lines(s, users={u.id: u for u in users})
            licences = _licence_entries(s)
            devices = _fetch_devices(s)
            locations = _fetch_locations(s)
            snap = DirectorySnapshot(
                version=self._snapshot.version + 1,
                accounts=FrozenMap((a.id, a) for a in accounts),
                users=FrozenMap((u.id, u) for u in users),
                user_by_extension=FrozenMap(((u.account_id, u.extension), u.id) for u in users),
                user_counts=FrozenMap(_count_users(users)),
                lines=FrozenMap((e.sip_username, e) for e in entries),
                lines_by_id=FrozenMap((e.line_id, e) for e in entries),
                by_user=FrozenMap(_group(entries, lambda e: e.user_id)),
                by_device=FrozenMap(_group(entries, lambda e: e.device_id)),
                licences=FrozenMap((lic.id, lic) for lic in licences),
                by_licence=FrozenMap(_by_licence(entries)),
                devices=FrozenMap((d.id, d) for d in devices),
                device_by_mac=FrozenMap((d.mac, d.id) for d in devices if d.mac),
                locations=FrozenMap((loc.id, loc) for loc in locations),
                devices_by_location=FrozenMap(_by_location(devices)),
            )
            self._snapshot = snap
            return snap

    def apply(self, change: Change, session: Session | None = None) -> DirectorySnapshot:
        """Fold one change into a new snapshot (re-reading only affected rows)."""
        return self.apply_many((change,), session)

    def apply_many(self, changes: Sequence[Change], session: Session | None = None) -> DirectorySnapshot:
        """Fold changes, in order, into one new snapshot, under one lock and one session.

        Why: the R13 writer commits a batch of first registrations at once (a lab's phones
        starting up), and applying them one by one cost a session, a device re-read and a
        re-read of the device's lines each, in every process. Changes in `R13_ONLY` touch
        only the device entry, so a run of them is refreshed with one query, lines untouched.
        """
        with self._lock, self._session(session) as s:
            snap = self._snapshot
            r13_devices: list[int] = []
            for change in changes:
                if change.kind in R13_ONLY:
                    r13_devices.append(change.entity_id)
                    continue
                if r13_devices:
                    snap = _refresh_devices(snap, s, r13_devices)
                    r13_devices = []
                snap = _fold(snap, s, change)
            if r13_devices:
                snap = _refresh_devices(snap, s, r13_devices)
            snap = replace(snap, version=snap.version + len(changes))
            self._snapshot = snap
            return snap


def _refresh_devices(snap: DirectorySnapshot, s: Session, ids: list[int]) -> DirectorySnapshot:
    """The entries of devices `ids` re-read, in chunks that keep a statement's bound
    parameters well inside every backend's limit."""
    unique = sorted(set(ids))
    for start in range(0, len(unique), _BATCH):
        chunk = unique[start:start + _BATCH]
        snap = replace_devices(snap, chunk, _fetch_devices(s, col(Device.id).in_(chunk)))
    return snap


def _fold(snap: DirectorySnapshot, s: Session, change: Change) -> DirectorySnapshot:
    """One change folded into `snap`, re-reading only the rows it names."""
    entity, eid = change.entity, change.entity_id
    if entity == "account":
        account = s.get(Account, eid)
        snap = replace(snap, accounts=snap.accounts.evolve(
            {eid: _account_entry(account)} if account else None,
            () if account else [eid]))
        if change.kind == "account.devices_imported":
            # One change for a whole bulk import: re-read the account's lines in one query.
            before = [e for e in snap.lines_by_id.values() if e.account_id == eid]
            snap = replace_lines(snap, before, _fetch_lines(s, col(Device.account_id) == eid, snap.users))
            known = [d.id for d in snap.devices.values() if d.account_id == eid]
            snap = replace_devices(snap, known, _fetch_devices(s, col(Device.account_id) == eid))
    elif entity == "user":
        fetched = _fetch_users(s, col(User.id) == eid)
        old_user = snap.users.get(eid)
        ext_deletes = [(old_user.account_id, old_user.extension)] if old_user else []
        deltas = {} if old_user is None else {old_user.account_id: -1}
        if fetched:
            entry = fetched[0]
            key = (entry.account_id, entry.extension)
            ext_deletes = [k for k in ext_deletes if k != key]
            deltas[entry.account_id] = deltas.get(entry.account_id, 0) + 1
            snap = replace(snap, users=snap.users.evolve({eid: entry}),
                           user_by_extension=snap.user_by_extension.evolve({key: eid}, ext_deletes))
        else:
            snap = replace(snap, users=snap.users.evolve(None, [eid]),
                           user_by_extension=snap.user_by_extension.evolve(None, ext_deletes))
        snap = replace(snap, user_counts=_recount(snap.user_counts, deltas))
        snap = replace_lines(snap, snap.by_user.get(eid, ()),
                             _fetch_lines(s, col(Line.user_id) == eid, snap.users))
    elif entity == "device":
        snap = replace_lines(snap, snap.by_device.get(eid, ()),
                             _fetch_lines(s, col(Line.device_id) == eid, snap.users))
        snap = replace_devices(snap, [eid], _fetch_devices(s, col(Device.id) == eid))
    elif entity == "location":
        snap = _refresh_location(snap, s, eid)
    elif entity == "outage":
        outage = s.get(SiteOutage, eid)
        if outage is not None:
            snap = _refresh_location(snap, s, outage.location_id)
    elif entity == "line":
        old = snap.lines_by_id.get(eid)
        # A reassigned line changes user (and username): re-read it by id.
        snap = replace_lines(snap, [old] if old else [], _fetch_lines(s, col(Line.id) == eid, snap.users))
    elif entity == "licence":
        held = snap.licences.get(eid)
        now = _licence_entries(s, col(Licence.id) == eid)
        users = set(held.user_ids if held else ()) | {u for e in now for u in e.user_ids}
        old_lines = [e for u in users for e in snap.by_user.get(u, ())]
        new_lines = _fetch_lines(s, col(Line.user_id).in_(sorted(users)), snap.users) if users else []
        snap = replace(snap, licences=snap.licences.evolve(
            {e.id: e for e in now}, () if now else [eid]))
        snap = replace_lines(snap, old_lines, new_lines)
    # A device's location_id changes arrive as device.* events; a location's fields as
    # location.* (plus device.location_changed per bound device). "room_kit" and "order"
    # carry nothing the SIP path reads.
    return snap
