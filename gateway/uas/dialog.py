"""The UAS side of a dialog (RFC 3261 §12.1.1) and the requests it sends in it (§12.2.1.1).

Why pure functions over a small record: the one request a built-in peer
originates is a BYE, and the gateway record-routes every call, so that BYE
must carry the dialog's route set and go to its first hop, not back to the
address the INVITE came from. Getting From/To/CSeq/Route right is easy to
test without sockets and worth testing on its own.

For the UAS, the route set is the INVITE's Record-Route values *in order*
(the UAC reverses them, the UAS does not); the remote target is the INVITE's
Contact; the local sequence number starts fresh (we use 1 for the first
request); From is the INVITE's To with our tag, To is the INVITE's From.
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass, field

from gateway.sip.errors import SipError
from gateway.sip.message import Request
from gateway.sip.uri import NameAddr, SipURI, parse_name_addr, parse_uri

Address = tuple[str, int]
MAGIC_COOKIE = "z9hG4bK"


@dataclass(slots=True)
class Dialog:
    """What a UAS must remember to send requests in a dialog and to check the ones it receives."""

    call_id: str
    local_tag: str
    remote_tag: str | None
    local_uri: str  # the INVITE's To value (no tag): our From in requests we send
    remote_uri: str  # the INVITE's From value (with its tag): our To
    remote_target: str  # the INVITE's Contact URI (refreshed by re-INVITE / UPDATE)
    route_set: list[str] = field(default_factory=list)  # Record-Route values, in the INVITE's order
    remote_cseq: int = 0
    local_cseq: int = 0


def dialog_from_invite(req: Request, local_tag: str, fallback_target: str) -> Dialog:
    """The dialog a 2xx (or a 1xx with a To tag) to `req` creates. Raises ParseError on a malformed header."""
    contacts = req.contacts
    target = str(contacts[0].uri) if isinstance(contacts, list) and contacts else fallback_target
    return Dialog(
        call_id=req.call_id,
        local_tag=local_tag,
        remote_tag=req.from_tag,
        local_uri=req.get("to") or "",
        remote_uri=req.get("from") or "",
        remote_target=target,
        route_set=[rr.raw or str(rr) for rr in req.record_routes],
        remote_cseq=req.cseq.seq,
    )


def refresh_target(dialog: Dialog, req: Request) -> None:
    """A re-INVITE or UPDATE may move the peer (§12.2.2 target refresh)."""
    contacts = req.contacts
    if isinstance(contacts, list) and contacts:
        dialog.remote_target = str(contacts[0].uri)


def request_target(dialog: Dialog) -> tuple[str, list[str], str]:
    """(Request-URI, Route values, URI of the next hop) for a request in `dialog` (§12.2.1.1).

    Loose routing (first route has `lr`): the Request-URI is the remote
    target and the whole route set goes in Route. Strict routing: the first
    route becomes the Request-URI and the remote target the last Route.
    """
    if not dialog.route_set:
        return dialog.remote_target, [], dialog.remote_target
    first: NameAddr = parse_name_addr(dialog.route_set[0])
    if isinstance(first.uri, SipURI) and "lr" in first.uri.params:
        return dialog.remote_target, list(dialog.route_set), str(first.uri)
    return str(first.uri), [*dialog.route_set[1:], f"<{dialog.remote_target}>"], str(first.uri)


def build_request(dialog: Dialog, method: str, via: str, *,
                  headers: list[tuple[str, str]] | None = None, body: bytes = b"") -> tuple[Request, str]:
    """A request of ours in the dialog and the URI of its next hop; bumps the local CSeq."""
    ruri, routes, hop = request_target(dialog)
    dialog.local_cseq += 1
    local = dialog.local_uri
    if dialog.local_tag:
        local = f"{local};tag={dialog.local_tag}"
    lines = [
        ["via", "Via", via],
        ["max-forwards", "Max-Forwards", "70"],
        ["from", "From", local],
        ["to", "To", dialog.remote_uri],
        ["call-id", "Call-ID", dialog.call_id],
        ["cseq", "CSeq", f"{dialog.local_cseq} {method}"],
    ]
    lines += [["route", "Route", r] for r in routes]
    lines += [[name.lower(), name, value] for name, value in headers or []]
    return Request(method, ruri, lines, body), hop


def new_branch() -> str:
    return MAGIC_COOKIE + secrets.token_hex(8)


def hop_address(uri: str, fallback: Address) -> Address:
    """Where to send a request whose next hop is `uri`: its host and port when the host is an
    IP address (the gateway's Record-Route, a phone's Contact); `fallback` otherwise.

    Why no DNS: the agent is sans-IO and lab peers speak to IP literals; a
    host name falls back to the address the INVITE came from, which is the
    gateway in every routed call.
    """
    try:
        parsed = parse_uri(uri)
    except SipError:
        return fallback
    if not isinstance(parsed, SipURI):
        return fallback
    host = parsed.host.strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return fallback
    maddr = parsed.params.get("maddr")
    if maddr:
        try:
            ipaddress.ip_address(maddr.strip("[]"))
            host = maddr.strip("[]")
        except ValueError:
            pass
    port = parsed.port or (5061 if parsed.scheme == "sips" else 5060)
    return host, port
