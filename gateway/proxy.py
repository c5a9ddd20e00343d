"""Stateful, record-routing proxy (RFC 3261 §16) for calls inside an account.

A new INVITE from an authenticated caller (407 challenge first) is forked to
every contact registered for the dialled extension or address of record;
the first 2xx wins and the other branches are CANCELled.  In-dialog requests
follow their Route headers (loose routing), and 2xx ACKs travel end to end.

Whom a call may reach is decided here from the directory snapshot; what the
provider's rules allow (caps, fair use…) will be asked of the pure policy in
``gateway/policy`` before forking — this module only carries out decisions.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from gateway.auth import Authenticator, Verdict
from gateway.calls import Call
from gateway.clock import TimerHandle
from gateway.counters import MemoryCounters, account_key, licence_key, line_key, usage_key
from gateway.dialogs import DialogInfo, Leg, build_bye, is_t38, session_interval
from gateway.emergency import (
    EmergencyClass,
    EmergencyContext,
    EmergencyRoute,
    RouteKind,
    attach_location,
    classify_call,
    emergency_decision,
    pidf_for_call,
    strip_location,
)
from gateway.location import Binding
from gateway.numbering import CallType, Destination, classify
from gateway.policy import Admit, Attempt, FloodGuard, Reject, Usage, decide
from gateway.registrar import refusal_for_line
from gateway.sip.errors import ParseError
from gateway.sip.message import Request, Response
from gateway.sip.uri import SipURI, parse_name_addr
from gateway.transport import Peer
from provisioning.directory import DirectorySnapshot, LineEntry, LocationEntry
from provisioning.plans import Plan, PlanCatalog, load_plans

if TYPE_CHECKING:
    from gateway.core import ClientCtx, ServerCtx, SipCore

log = logging.getLogger("voiplab.proxy")

DEFAULT_MAX_FORWARDS = 70
#: RFC 3261 §16.6 step 11: a ringing branch gets CANCELled after this long without a final answer.
TIMER_C = 180.0
CANCEL_REASON = 'SIP;cause=200;text="Call completed elsewhere"'


@dataclass(slots=True)
class Fork:
    """One proxied request and its branches (one per contact)."""

    server: ServerCtx
    is_invite: bool
    call_id: str
    branches: list[ClientCtx] = field(default_factory=list)
    finals: list[tuple[int, str, Response | None] | None] = field(default_factory=list)
    provisional: list[bool] = field(default_factory=list)
    cancel_wanted: list[bool] = field(default_factory=list)
    done: bool = False  # a final answer went upstream
    answered: bool = False
    cancelled: bool = False
    tracked: bool = False  # a call record is open for it
    timer_c: TimerHandle | None = None
    timed_out: bool = False  # Timer C gave up: nobody answered
    source: Peer | None = None  # where the request came from (the caller's flow)
    in_dialog: bool = False
    live: int = 0  # client transactions not yet terminated (to break reference cycles when 0)


def _emergency_record(req: Request, caller: LineEntry, call: EmergencyClass, decision: EmergencyRoute,
                      location: LocationEntry | None, pidf: bytes | None, cid: str | None,
                      at: datetime) -> dict[str, Any]:
    """An emergency call as decided and sent (``provisioning.e911_schemas.EmergencyCallIn``'s shape):
    the audit keeps it with the exact PIDF-LO, and Kari's Law notifications are built from it."""
    return {
        "call_id": req.call_id, "account_id": caller.account_id, "device_id": caller.device_id,
        "location_id": location.id if location is not None else None, "caller": caller.sip_username,
        "dialled": call.dialled, "service_urn": call.service_urn, "is_test": call.is_test,
        "route_kind": decision.kind.value, "code": decision.code, "rule_id": decision.rule_id,
        "reason": decision.reason, "sip_status": decision.status, "with_location": pidf is not None,
        "callback": location.callback_number if location is not None and pidf is not None else None,
        "pidf": pidf.decode("utf-8") if pidf is not None else None, "content_id": cid,
        "warnings": list(decision.warnings), "started_at": at,
    }


def _response_rank(status: int) -> tuple[int, int]:
    """RFC 3261 §16.7 step 6: 6xx first, then the lowest class; within a class, lowest code."""
    cls = status // 100
    return (0 if cls == 6 else cls, status)


@dataclass(slots=True)
class BuiltinRoutes:
    """Where the built-in peers listen: the simulated PSTN trunk and the conference bridge.

    ``pstn`` maps an E.164 number to the Request-URI the trunk expects;
    ``conference`` maps a dialled string to a room's URI, or None when it is no room.
    """

    pstn: Callable[[str], str] | None = None
    pstn_peer: Peer | None = None
    conference: Callable[[str], str | None] | None = None
    conference_peer: Peer | None = None
    psap_peer: Peer | None = None  # the PSAP simulator: emergency calls go here with their service URN
    national_centre: str | None = None  # its URI for calls that carry no location (R15)


class Proxy:
    def __init__(self, core: SipCore, auth: Authenticator, *, plans: PlanCatalog | None = None,
                 counters: MemoryCounters | None = None, guard: FloodGuard | None = None,
                 routes: BuiltinRoutes | None = None) -> None:
        self.core = core
        self.auth = auth
        self.routes = routes or BuiltinRoutes()
        #: the latest emergency calls as routed (decision, exact PIDF-LO sent), newest last
        self.emergency_log: deque[dict[str, Any]] = deque(maxlen=1000)
        #: where each emergency record also goes (the composition root: a writer to the E911 store,
        #: the Kari's Law notifier); called on the loop, must not block
        self.on_emergency: Callable[[dict[str, Any]], None] | None = None
        self.plans = plans if plans is not None else load_plans()
        self.counters = counters if counters is not None else MemoryCounters()
        self.guard = guard or FloodGuard()
        core.calls.on_end = self._call_ended
        core.calls.rate = self._rate

    # -- our own address on the wire --------------------------------------------------------
    def _via(self, peer: Peer, branch: str) -> str:
        ident = self.core.identity
        port = ident.ports.get(peer.proto) or ident.ports["udp"]
        return f"SIP/2.0/{peer.proto.upper()} {ident.address_for(peer.host)}:{port};branch={branch}"

    def _rr(self, peer: Peer) -> str:
        """Our Record-Route entry as seen from ``peer``'s side (transport and address family)."""
        ident = self.core.identity
        proto = peer.proto
        port = ident.ports.get(proto) or ident.ports["udp"]
        transport = "" if proto == "udp" else f";transport={proto}"
        scheme = "sips" if proto == "tls" else "sip"
        return f"<{scheme}:{ident.address_for(peer.host)}:{port}{transport};lr>"

    # -- new (out-of-dialog) requests -------------------------------------------------------
    def new_request(self, ctx: ServerCtx, peer: Peer) -> None:
        core = self.core
        req = ctx.request
        mf = req.max_forwards
        if mf is not None and mf <= 0:
            core.respond(ctx, 483, "Too Many Hops")
            return
        if self._looped(req):
            core.respond(ctx, 482, "Loop Detected")
            return
        snapshot = core.directory.snapshot
        now = core.clock.now()
        result = self.auth.check(req, "proxy-authorization", snapshot, now)
        if result.verdict is Verdict.CHALLENGE or result.verdict is Verdict.STALE:
            stale = result.verdict is Verdict.STALE
            core.respond_statelessly(ctx, 407, "Proxy Authentication Required",
                                     headers=[("Proxy-Authenticate", c) for c in self.auth.challenges(now, stale)])
            return
        if result.verdict is Verdict.BAD_URI:
            core.respond(ctx, 400, "Digest uri does not match the Request-URI")
            return
        if result.verdict is Verdict.FORBIDDEN:
            core.respond(ctx, 403, "Forbidden")
            return
        caller = result.line
        assert caller is not None
        is_invite = req.method == "INVITE"
        ruri = req.ruri
        if is_invite:
            # emergency calls are classified before anything else may refuse them (R10/R11 only)
            account = snapshot.accounts.get(caller.account_id)
            region = account.region if account is not None else "US"
            key = (ruri.user_unescaped or "") if isinstance(ruri, SipURI) else req.uri
            emergency = classify_call(key, region)
            if emergency is not None:
                self._emergency(ctx, caller, emergency, peer, now)
                return
        if not isinstance(ruri, SipURI):
            core.respond(ctx, 416, "Unsupported URI Scheme")
            return
        dialled = ruri.user_unescaped or ""
        if not core.identity.is_me(ruri.host, ruri.port):
            self._refuse(ctx, caller, dialled, 404, "Domain Not Served")  # we relay nowhere else (yet)
            return
        refusal = refusal_for_line(caller, snapshot)
        if refusal is not None:
            self._refuse(ctx, caller, dialled, refusal[0], refusal[1])
            return
        targets = self._resolve(caller, dialled, snapshot)
        destination = self._destination(ctx, caller, dialled, targets, snapshot, now)
        if destination is None:
            return
        dest, legs = destination
        admitted = self._apply_policy(ctx, caller, dialled, dest, peer, now)
        if admitted is None:
            return
        fork = Fork(ctx, is_invite, req.call_id, source=peer)
        ctx.fork = fork
        if is_invite:
            core.respond(ctx, 100, "Trying")
            callee_user = targets[0].user_id if targets else None
            call = core.calls.start(req.call_id, caller.account_id, caller.sip_username, dialled,
                                    caller.user_id, callee_user, req.from_tag)
            fork.tracked = call is not None
            if call is not None:
                self._hold(call, caller, admitted)
                call.fax_line = call.fax_line or any(t.purpose == "fax" for t in targets)
        self._prepare(req, mf)
        for uri, target in legs:
            self._add_branch(fork, uri, target, peer)
        if is_invite:
            self._restart_timer_c(fork)  # RFC 3261 §16.6 step 11: even a branch that only says 100

    def _destination(self, ctx: ServerCtx, caller: LineEntry, dialled: str, targets: list[LineEntry],
                     snapshot: DirectorySnapshot, now: float) -> tuple[Destination, list[tuple[str, Peer]]] | None:
        """Where a new request goes: registered contacts on the platform, a conference room, or the PSTN.

        Returns the destination type (what policy and rating judge) and the
        branches to fork to, or None after refusing (404/480).
        """
        if targets:
            bindings: list[Binding] = []
            for line in targets:
                bindings.extend(self.core.location.lookup(line.sip_username, now))
            if not bindings:
                self._refuse(ctx, caller, dialled, 480, "Temporarily Unavailable")
                return None
            legs = [(b.contact, b.peer) for b in sorted(bindings, key=lambda b: -b.q)]
            return Destination(CallType.ON_NET, None, None), legs
        if snapshot.user_by_extension.get((caller.account_id, dialled)) is not None:
            self._refuse(ctx, caller, dialled, 480, "Temporarily Unavailable")  # a user without a device
            return None
        routes = self.routes
        room = routes.conference(dialled) if routes.conference is not None else None
        if room is not None and routes.conference_peer is not None:
            return Destination(CallType.CONFERENCE, None, None), [(room, routes.conference_peer)]
        account = snapshot.accounts.get(caller.account_id)
        region = account.region if account is not None else "US"
        dest = classify(dialled, region)
        e164 = dest.e164
        if e164 is None or routes.pstn is None or routes.pstn_peer is None:
            self._refuse(ctx, caller, dialled, 404, "Not Found")
            return None
        plan = self.plans.get(account.plan) if account is not None else None
        if plan is not None and dest.kind in (CallType.DOMESTIC, CallType.INTERNATIONAL):
            home = plan.rates.is_domestic(e164, region)  # the plan's rate table says what is home
            dest = Destination(CallType.DOMESTIC if home else CallType.INTERNATIONAL, e164, dest.country_code)
        return dest, [(routes.pstn(e164), routes.pstn_peer)]

    # -- emergency calls (R10–R16) ---------------------------------------------------------------
    def _emergency(self, ctx: ServerCtx, caller: LineEntry, call: EmergencyClass, peer: Peer, now: float) -> None:
        """Route an emergency or test call: no cap, fair use or fraud rule applies, only R10/R11."""
        core, req = self.core, ctx.request
        snapshot = core.directory.snapshot
        account = snapshot.accounts.get(caller.account_id)
        plan = self.plans.get(account.plan) if account is not None else None
        device = snapshot.devices.get(caller.device_id)
        location = snapshot.locations.get(device.location_id) if device and device.location_id else None
        decision = emergency_decision(call, EmergencyContext(
            account_status=account.status if account is not None else "active",
            plan_emergency_calling=plan.emergency_calling if plan is not None else False,
            device_state=caller.device_state,
            location_known=location is not None and location.valid,
            location_forwarding=device.location_forwarding if device is not None else False,
            outage=location.outage if location is not None else None,
            location_stale=device.location_stale if device is not None else False,
            stale_policy=account.stale_policy if account is not None else "use_last",
        ))
        routes = self.routes
        if decision.kind is RouteKind.REFUSE or routes.psap_peer is None:
            status = decision.status or 503
            reason = decision.reason if decision.kind is RouteKind.REFUSE else "No emergency service configured"
            core.calls.refused(req.call_id, caller.account_id, caller.sip_username, call.dialled, status, reason,
                               decision.rule_id, caller.user_id)
            core.respond(ctx, status, reason, headers=decision.refusal_headers(core.identity.advertise))
            self._log_emergency(_emergency_record(req, caller, call, decision, location, None, None,
                                                  core.clock.wall()))
            return
        to_psap = decision.kind is RouteKind.PSAP
        uri = decision.service_urn if to_psap else (routes.national_centre or decision.service_urn)
        fork = Fork(ctx, True, req.call_id, source=peer)
        ctx.fork = fork
        core.respond(ctx, 100, "Trying")
        record = core.calls.start(req.call_id, caller.account_id, caller.sip_username, call.dialled,
                                  caller.user_id, None, req.from_tag)
        fork.tracked = record is not None
        if record is not None:
            record.call_type = "emergency"
            record.rule_id = decision.rule_id
        self._prepare(req, req.max_forwards)
        target = routes.psap_peer
        fwd = self._forwarded(req, uri, self._via(target, core.new_branch()), [self._rr(peer)])
        pidf: bytes | None = None
        cid: str | None = None
        if decision.with_location and location is not None and device is not None:
            pidf, cid = pidf_for_call(dict(location.civic), device_id=device.id, mac=device.mac,
                                      callback=location.callback_number, domain=core.identity.domain,
                                      now=core.clock.wall())
            attach_location(fwd, pidf=pidf, cid=cid, callback=location.callback_number,
                            host=core.identity.domain, display=caller.display_name)
        else:
            strip_location(fwd)
        fork.live += 1
        fork.branches.append(core.start_client(fwd, target, fork=fork))
        fork.finals.append(None)
        fork.provisional.append(False)
        fork.cancel_wanted.append(False)
        self._restart_timer_c(fork)
        logged = _emergency_record(req, caller, call, decision, location, pidf, cid, core.clock.wall())
        if record is not None:
            record.emergency = logged  # sent again with answer/end times when the call ends
        self._log_emergency(logged)

    def _log_emergency(self, record: dict[str, Any]) -> None:
        self.emergency_log.append(record)
        if self.on_emergency is not None:
            self.on_emergency(record)

    # -- call policy ------------------------------------------------------------------------
    def _apply_policy(self, ctx: ServerCtx, caller: LineEntry, dialled: str, dest: Destination, peer: Peer,
                      now: float) -> tuple[Plan, Attempt, Admit] | None:
        """Ask the pure policy; refuse (with the rule in reason and record) or return what admitted it."""
        snapshot = self.core.directory.snapshot
        account = snapshot.accounts.get(caller.account_id)
        plan = self.plans.get(account.plan) if account is not None else None
        if account is None or plan is None:
            self._refuse(ctx, caller, dialled, 403, "Account has no service plan")
            return None
        if ctx.request.method != "INVITE":
            return plan, Attempt(caller.account_id, caller.sip_username, dest), Admit(counts_for_fair_use=False)
        counters, guard = self.counters, self.guard
        # R27/R22 automated dialling is a caller's pattern (many lines share one NAT address, and
        # every phone of a lab shares loopback), high-frequency inbound calls a callee's
        source_key, callee_key = f"src:{caller.sip_username}", f"dst:{caller.account_id}:{dialled}"
        fair = plan.fair_use
        month = self.core.business_clock.wall().strftime("%Y-%m")
        usage = Usage(
            account_active=counters.active(account_key(caller.account_id)),
            line_active=counters.active(line_key(caller.sip_username)),
            licence_active=(counters.active(licence_key(caller.licence_id))
                            if caller.licence_id is not None and caller.licence_kind == "concurrent" else 0),
            fair_use_minutes=(counters.usage(usage_key(caller.account_id, month, fair.counts)) / 60.0
                              if fair is not None else 0.0),
            fair_use_limit=self._fair_use_limit(plan, caller.account_id),
            source_rate=counters.hit(source_key, now, guard.window),
            callee_rate=counters.hit(callee_key, now, guard.window),
            source_banned=counters.banned_until(source_key, now) is not None,
            callee_banned=counters.banned_until(callee_key, now) is not None,
        )
        concurrent = caller.licence_id if caller.licence_kind == "concurrent" else None
        attempt = Attempt(caller.account_id, caller.sip_username, dest, deposit_usd=account.deposit_usd,
                          allowed_prefixes=account.allowed_prefixes,
                          line_limit=1 if caller.port is not None else None,  # an ATA port carries one call
                          licence_id=concurrent)
        decision = decide(attempt, plan, usage, guard)
        if isinstance(decision, Reject):
            if decision.ban is not None:
                counters.ban(source_key if decision.ban == "source" else callee_key, now + guard.ban_seconds)
            self._refuse(ctx, caller, dialled, decision.status, decision.reason, decision.rule_id, dest, plan)
            return None
        return plan, attempt, decision

    def _fair_use_limit(self, plan: Plan, account_id: int) -> float | None:
        """The month's allowance in minutes (R20 per account, R26/R31 per user of the account)."""
        if plan.fair_use is None:
            return None
        users = self._authorised_users(account_id)  # audio users are the account's named users too
        return float(plan.fair_use.monthly_limit(authorised_users=users, audio_users=users))

    def _authorised_users(self, account_id: int) -> int:
        """Users in the account (the fair-use basis of R26/R31), counted by the directory as users
        come and go (recounting 100,000 users after each provisioning change stalled the loop)."""
        return self.core.directory.snapshot.user_count(account_id)

    def _hold(self, call: Call, caller: LineEntry, admitted: tuple[Plan, Attempt, Admit]) -> None:
        """An admitted call takes its lease on the concurrency counters and notes where its minutes go."""
        plan, attempt, decision = admitted
        keys = [account_key(caller.account_id), line_key(caller.sip_username)]
        if attempt.licence_id is not None:
            keys.append(licence_key(attempt.licence_id))
        self.counters.acquire(call.call_id, keys)
        call.fax_line = caller.purpose == "fax"
        call.call_type = attempt.destination.kind.value
        call.destination = attempt.destination.e164
        call.overage = decision.overage
        call.plan_id = plan.id
        account = self.core.directory.snapshot.accounts.get(caller.account_id)
        call.region = account.region if account is not None else "US"
        if plan.fair_use is not None and decision.counts_for_fair_use:
            month = self.core.business_clock.wall().strftime("%Y-%m")
            call.usage_key = usage_key(caller.account_id, month, plan.fair_use.counts)

    def _rate(self, call: Call, duration: float) -> dict[str, Any]:
        """R24/R28: billable seconds in the plan's increments, and the plan's price for PSTN minutes."""
        plan = self.plans.get(call.plan_id or "")
        if plan is None:
            return {}
        billable = plan.billing.billable_seconds(duration)
        fields: dict[str, Any] = {"billable_s": billable, "currency": plan.rates.currency,
                                  "rate_per_min": None, "charge": Decimal(0)}
        if call.destination and call.call_type in ("domestic", "international", "toll-free", "premium"):
            quote = plan.quote(call.destination, call.region)
            if not quote.included and quote.per_min is not None:
                fields["rate_per_min"] = quote.per_min
                fields["charge"] = (quote.per_min * billable / 60).quantize(Decimal("0.0001"))
        return fields

    def _call_ended(self, call: Call, duration: float) -> None:
        """Every ending path of a call: release its lease, count its minutes, close its emergency record."""
        self.counters.release(call.call_id)
        if call.emergency is not None and self.on_emergency is not None:
            now = self.core.clock.wall()
            self.on_emergency({**call.emergency, "answered_at": call.answer_wall, "ended_at": now,
                               "sip_status": call.end_code})
        if call.usage_key is not None and duration > 0:
            self.counters.add_usage(call.usage_key, duration)

    # -- enforcing on confirmed calls: duration caps (R20) and session timers (RFC 4028) -------------
    def _confirmed(self, fork: Fork, bctx: ClientCtx, resp: Response) -> None:
        """The kept 2xx: remember both legs (to send BYEs ourselves) and start the call's timers."""
        call = self.core.calls.calls.get(fork.call_id)
        req = fork.server.request
        if call is None or fork.source is None:
            return
        try:
            caller_contacts, callee_contacts = req.contacts, resp.contacts
        except ParseError:
            return  # we can still relay this call; we just cannot end it ourselves
        if caller_contacts == "*" or callee_contacts == "*" or not caller_contacts or not callee_contacts:
            return
        call.dialog = DialogInfo(
            call_id=req.call_id, caller_from=req.get("from") or "", callee_to=resp.get("to") or "",
            caller_tag=req.from_tag, callee_tag=resp.to_tag,
            caller=Leg(str(caller_contacts[0].uri), fork.source, req.cseq.seq),
            callee=Leg(str(callee_contacts[0].uri), bctx.target, 0),
            fax=call.fax_line or is_t38(req.body) or is_t38(resp.body),
            session_interval=session_interval(resp.get("session-expires")),
        )
        self._arm_call_timers(call)

    def _arm_call_timers(self, call: Call) -> None:
        """(Re)start the duration cap for the call's media type and its session timer."""
        info = call.dialog
        if info is None or call.answered is None:
            return
        for handle in call.timers:
            handle.cancel()
        call.timers.clear()
        clock = self.core.business_clock  # the caps are service rules: they follow --time-scale
        plan = self.plans.get(call.plan_id or "")
        cap = None if plan is None else (plan.fax_max_seconds if info.fax else plan.voice_max_seconds)
        if cap is not None:
            kind = "Fax" if info.fax else "Voice"
            text = f"{kind} call duration cap of {cap / 3600:g} h reached (R20)"
            left = call.answered + cap - clock.now()
            call.timers.append(clock.call_later(left, lambda: self.end_call(call.call_id, text, "R20")))
        if info.session_interval:  # negotiated with the phones: their real time (gateway/clock.py)
            call.timers.append(self.core.clock.call_later(
                info.session_interval,
                lambda: self.end_call(call.call_id, "Session expired without refresh (RFC 4028)", None)))

    def _track_cseq(self, req: Request) -> None:
        call = self.core.calls.calls.get(req.call_id)
        if call is not None and call.dialog is not None:
            leg = call.dialog.side_of(req.from_tag)
            if leg is not None:
                leg.cseq = max(leg.cseq, req.cseq.seq)

    def _refreshed(self, req: Request, resp: Response) -> None:
        """A re-INVITE or UPDATE succeeded: T.38 may have started, the session timer restarts."""
        call = self.core.calls.calls.get(req.call_id)
        info = call.dialog if call is not None else None
        if call is None or info is None:
            return
        if is_t38(req.body) or is_t38(resp.body):
            info.fax = True
        interval = session_interval(resp.get("session-expires"))
        if interval is not None:
            info.session_interval = interval
        self._arm_call_timers(call)

    def end_call(self, call_id: str, text: str, rule_id: str | None) -> bool:
        """End a confirmed call from the gateway: BYE to both legs with a Reason, then the record."""
        call = self.core.calls.calls.get(call_id)
        if call is None or call.dialog is None:
            return False
        info = call.dialog
        reason = f'SIP;cause=200;text="{text}"'
        for toward_callee in (True, False):
            leg = info.callee if toward_callee else info.caller
            bye = build_bye(info, toward_callee, self._via(leg.peer, self.core.new_branch()), reason)
            self.core.start_client(bye, leg.peer, on_final=lambda _r: None)
        self.core.calls.end(call_id, text, rule_id)
        return True

    def _looped(self, req: Request) -> bool:
        """RFC 3261 §16.3 step 4: one of our own branches below the top Via means the request came back."""
        prefix = self.core.branch_prefix
        return any((v.branch or "").startswith(prefix) for v in req.vias[1:])

    @staticmethod
    def _resolve(caller: LineEntry, dialled: str, snapshot: DirectorySnapshot) -> list[LineEntry]:
        """The dialled extension's lines, or the line whose SIP username was dialled, in the caller's account."""
        by_ext = snapshot.extension_lines(caller.account_id, dialled)
        if by_ext:
            return list(by_ext)
        line = snapshot.lines.get(dialled)
        if line is not None and line.account_id == caller.account_id:
            return [line]
        return []

    def _refuse(self, ctx: ServerCtx, caller: LineEntry, dialled: str, code: int, reason: str,
                rule_id: str | None = None, dest: Destination | None = None, plan: Plan | None = None) -> None:
        req = ctx.request
        if req.method == "INVITE":
            self.core.calls.refused(req.call_id, caller.account_id, caller.sip_username, dialled, code,
                                    reason, rule_id, caller.user_id,
                                    call_type=dest.kind.value if dest is not None else "on-net",
                                    destination=dest.e164 if dest is not None else None,
                                    plan=plan.id if plan is not None else None)
        self.core.respond(ctx, code, reason)

    def _prepare(self, req: Request, mf: int | None) -> None:
        """Edits common to every branch: Max-Forwards, and our realm's credentials consumed (§22.3)."""
        req.set("max-forwards", str((mf if mf is not None else DEFAULT_MAX_FORWARDS + 1) - 1))
        creds = req.get_all("proxy-authorization")
        if creds:
            req.remove("proxy-authorization")
            mine = f'realm="{self.auth.realm}"'
            for value in creds:
                if mine not in value:
                    req.add("proxy-authorization", value)

    def _add_branch(self, fork: Fork, uri: str, target: Peer, source: Peer) -> None:
        req = fork.server.request
        branch = self.core.new_branch()
        rrs: list[str] = []
        if fork.is_invite:
            inbound, outbound = self._rr(source), self._rr(target)
            rrs.append(inbound)
            if outbound != inbound:
                rrs.append(outbound)  # double record-route across transports or address families
        fwd = self._forwarded(req, uri, self._via(target, branch), rrs)
        fork.live += 1
        fork.branches.append(self.core.start_client(fwd, target, fork=fork, branch_index=len(fork.branches)))
        fork.finals.append(None)
        fork.provisional.append(False)
        fork.cancel_wanted.append(False)

    @staticmethod
    def _forwarded(req: Request, uri: str | None, via: str, rrs: list[str]) -> Request:
        """A copy of ``req`` for one branch: new Request-URI, our Via on top, Record-Route added.

        Copies the header triples rather than re-parsing serialised bytes; the
        original stays untouched for the server transaction.
        """
        fwd = Request(req.method, uri if uri is not None else req.uri, [h[:] for h in req.headers],
                      req.body, req.version)
        fwd.prepend("via", via)
        for rr in rrs:
            fwd.prepend("record-route", rr)
        return fwd

    # -- in-dialog requests and ACK ---------------------------------------------------------
    def _next_hop(self, req: Request) -> Peer | None:
        """Loose routing (RFC 3261 §16.12): pop our own Route entries, then the next hop.

        Only a request that carried our Route (we record-routed its dialog) is
        relayed; anything else in-dialog is not ours to forward, which keeps the
        gateway from being an open relay toward arbitrary hosts.  A request from
        a strict router arrives with our Record-Route URI as its Request-URI: the
        last Route becomes the Request-URI again (§16.4).
        """
        ident = self.core.identity
        ours = False
        ruri = req.ruri
        if isinstance(ruri, SipURI) and ruri.user is None and ident.is_me(ruri.host, ruri.port):
            values = req.values("route")
            if values:
                last = parse_name_addr(values[-1])
                req.remove("route")
                for value in values[:-1]:
                    req.add("route", value)
                req.set_uri(str(last.uri))
                ours = True
        while True:
            routes = req.routes
            if not routes:
                break
            top = routes[0].uri
            if isinstance(top, SipURI) and ident.is_me(top.host, top.port):
                req.remove_first_value("route")
                ours = True
                continue
            return self._peer_for_uri(top) if ours else None
        if not ours:
            return None
        ruri = req.ruri
        if not isinstance(ruri, SipURI) or ident.is_me(ruri.host, ruri.port):
            return None
        return self._peer_for_uri(ruri)

    def _peer_for_uri(self, uri: object) -> Peer:
        if not isinstance(uri, SipURI):
            raise ParseError("Unroutable URI", status=416)
        binding = self.core.location.by_contact(str(uri))
        if binding is not None:
            return binding.peer
        transport = (uri.params.get("transport") or ("tls" if uri.scheme == "sips" else "udp")).lower()
        if transport not in ("udp", "tcp", "tls"):
            transport = "udp"
        port = uri.port or (5061 if transport == "tls" else 5060)
        return Peer(transport, uri.host.strip("[]"), port)

    def in_dialog(self, ctx: ServerCtx, peer: Peer) -> None:
        core = self.core
        req = ctx.request
        mf = req.max_forwards
        if mf is not None and mf <= 0:
            core.respond(ctx, 483, "Too Many Hops")
            return
        target = self._next_hop(req)
        if target is None:
            core.respond(ctx, 404, "Not Here")  # no Route of ours: not a dialog we are in
            return
        if req.method == "BYE":
            core.calls.bye(req.call_id, req.from_tag, req.to_tag)
        else:
            self._track_cseq(req)
        fork = Fork(ctx, req.method == "INVITE", req.call_id, in_dialog=True)
        ctx.fork = fork
        self._prepare_in_dialog(req, mf)
        branch = core.new_branch()
        fwd = self._forwarded(req, None, self._via(target, branch), [])
        fork.live += 1
        fork.branches.append(core.start_client(fwd, target, fork=fork))
        fork.finals.append(None)
        fork.provisional.append(False)
        fork.cancel_wanted.append(False)

    @staticmethod
    def _prepare_in_dialog(req: Request, mf: int | None) -> None:
        req.set("max-forwards", str((mf if mf is not None else DEFAULT_MAX_FORWARDS + 1) - 1))

    def on_ack(self, req: Request, peer: Peer) -> None:
        """ACK for a 2xx: its own transaction, forwarded statelessly along the route set."""
        mf = req.max_forwards
        if mf is not None and mf <= 0:
            return
        target = self._next_hop(req)
        if target is None:
            return  # an ACK for something we answered ourselves, or not ours: absorb
        self._prepare_in_dialog(req, mf)
        fwd = self._forwarded(req, None, self._via(target, self.core.new_branch()), [])
        self.core.send(fwd.to_bytes(), target)

    # -- CANCEL ---------------------------------------------------------------------------------
    def cancel(self, invite_ctx: ServerCtx) -> None:
        fork: Fork | None = invite_ctx.fork
        if fork is None or fork.done:
            return
        fork.cancelled = True
        self.core.calls.cancel(fork.call_id)
        for i in range(len(fork.branches)):
            self._cancel_branch(fork, i, None)

    def _cancel_branch(self, fork: Fork, i: int, reason: str | None) -> None:
        if fork.finals[i] is not None:
            return
        if not fork.provisional[i]:
            fork.cancel_wanted[i] = True  # RFC 3261 §9.1: wait for a provisional response
            return
        fork.cancel_wanted[i] = False
        bctx = fork.branches[i]
        # with ``now`` the CANCELled branch ends by itself (64*T1) if the callee never answers
        cancel = bctx.txn.cancel_request(self.core.clock.now())  # type: ignore[union-attr]
        self.core.txns.update(bctx.txn)  # the guard is a new deadline for the INVITE's transaction
        if reason:
            cancel.add("reason", reason)
        self.core.start_client(cancel, bctx.target, on_final=lambda _r: None)

    # -- responses from branches ----------------------------------------------------------------
    def on_branch_response(self, bctx: ClientCtx, resp: Response) -> None:
        fork: Fork = bctx.fork
        i = bctx.branch_index
        status = resp.status
        if status < 200:
            fork.provisional[i] = True
            if fork.cancel_wanted[i]:
                self._cancel_branch(fork, i, None)
            if status == 100 or fork.done:
                return
            if fork.is_invite:
                self._restart_timer_c(fork)
            if fork.is_invite and status in (180, 183):
                self.core.calls.ringing(fork.call_id)
            self._relay(fork, resp)
            return
        if 200 <= status < 300:
            fork.finals[i] = (status, resp.reason, resp)
            if fork.done and not fork.answered:
                # a 2xx that crossed our CANCEL after a non-2xx final went upstream: the server
                # transaction can no longer send it, but the caller must see it (§16.7 step 10)
                resp.remove_first_value("via")
                self.core.send(resp.to_bytes(), fork.server.reply_peer)
                return
            first = not fork.answered
            fork.answered = True
            fork.done = True
            if fork.timer_c is not None:
                fork.timer_c.cancel()
                fork.timer_c = None
            if first and fork.is_invite and fork.tracked:
                self.core.calls.final(fork.call_id, status, resp.reason, resp.to_tag)
                self._confirmed(fork, bctx, resp)
            elif fork.in_dialog and fork.server.request.method in ("INVITE", "UPDATE"):
                self._refreshed(fork.server.request, resp)
            self._relay(fork, resp)  # every 2xx goes upstream (RFC 3261 §16.7 step 5)
            if first and fork.is_invite:
                for j in range(len(fork.branches)):
                    if j != i:
                        self._cancel_branch(fork, j, CANCEL_REASON)
            return
        fork.finals[i] = (status, resp.reason, resp)
        if fork.done:
            return
        if status >= 600 and fork.is_invite:
            # §16.7 step 5: a 6xx is kept, not forwarded at once; the others are CANCELled and the
            # answer goes up when every branch is final (so a crossing 2xx still wins)
            for j in range(len(fork.branches)):
                if j != i:
                    self._cancel_branch(fork, j, None)
        self._maybe_finish(fork)

    def _restart_timer_c(self, fork: Fork) -> None:
        if fork.timer_c is not None:
            fork.timer_c.cancel()
        fork.timer_c = self.core.clock.call_later(TIMER_C, lambda: self._timer_c(fork))

    def _timer_c(self, fork: Fork) -> None:
        fork.timer_c = None
        if fork.done:
            return
        fork.timed_out = True
        for i in range(len(fork.branches)):
            self._cancel_branch(fork, i, 'SIP;cause=408;text="No answer (Timer C)"')

    def on_branch_timeout(self, bctx: ClientCtx) -> None:
        fork: Fork = bctx.fork
        if fork.finals[bctx.branch_index] is None:
            fork.finals[bctx.branch_index] = (408, "Request Timeout", None)
        if not fork.done:
            self._maybe_finish(fork)

    def _maybe_finish(self, fork: Fork) -> None:
        finals = fork.finals
        if any(f is None for f in finals):
            return
        best = min((f for f in finals if f is not None), key=lambda f: _response_rank(f[0]))
        fork.done = True
        if fork.timer_c is not None:
            fork.timer_c.cancel()
            fork.timer_c = None
        status, reason, resp = best
        if fork.timed_out:
            status, reason, resp = 408, "Request Timeout", None
        elif fork.cancelled:
            status, reason, resp = 487, "Request Terminated", None
        elif status == 503:
            status, reason, resp = 500, "Server Internal Error", None  # RFC 3261 §16.7 step 6
        if fork.is_invite and fork.tracked:
            self.core.calls.final(fork.call_id, status, reason)
        if resp is not None:
            self._relay(fork, resp)
        elif status == 408 and not fork.is_invite:
            # RFC 4320 §4.2: never a 408 to a non-INVITE; the upstream client has timed out anyway
            self.core.abandon(fork.server)
        else:
            self.core.respond(fork.server, status, reason)

    def branch_terminated(self, bctx: ClientCtx) -> None:
        """A client transaction ended: once all have and the answer went up, drop the references."""
        fork: Fork = bctx.fork
        fork.live -= 1
        if fork.live <= 0 and fork.done:
            fork.branches.clear()

    def _relay(self, fork: Fork, resp: Response) -> None:
        resp.remove_first_value("via")
        self.core.respond_with(fork.server, resp)

    def forward_response_stateless(self, resp: Response) -> None:
        resp.remove_first_value("via")
        try:
            via = resp.top_via
        except ParseError:
            return
        port = via.rport if via.rport is not None and via.rport is not True else via.sent_by[1]
        self.core.send(resp.to_bytes(), Peer(via.transport.lower(), via.received or via.host, port))
