"""Build an RFC 6442 emergency INVITE the way the gateway forwards one (for tests and lab scripts).

Why here: the PSAP simulator's tests, and anyone checking a PSAP by hand,
need the same INVITE the gateway's proxy produces with
`gateway.emergency.attach_location`; building it in one place keeps them
identical.
"""

from __future__ import annotations

import secrets

from gateway.emergency import attach_location
from gateway.sip.message import Request

DEFAULT_SDP = (b"v=0\r\no=caller 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
               b"m=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
               b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n")


def build_emergency_invite(*, local: tuple[str, int], ruri: str = "urn:service:sos",
                           to: str | None = None, pidf: bytes | None = None, cid: str | None = None,
                           callback: str | None = "+12175550123", domain: str = "gw.example.net",
                           sdp: bytes | None = DEFAULT_SDP, call_id: str | None = None,
                           from_user: str = "acct1-1001", cseq: int = 1,
                           record_route: list[str] | None = None) -> Request:
    """An emergency INVITE as sent from `local` (host, port: Via, Contact) to `ruri`.

    With `pidf`, the body is multipart (SDP + PIDF-LO under `cid`) and the
    Geolocation headers and P-Asserted-Identity are set exactly as the
    gateway sets them; without, a plain SDP INVITE (national centre case).
    """
    host, port = local
    call_id = call_id or f"{secrets.token_hex(8)}@{host}"
    branch = "z9hG4bK" + secrets.token_hex(8)
    headers = [
        ["via", "Via", f"SIP/2.0/UDP {host}:{port};branch={branch};rport"],
        ["max-forwards", "Max-Forwards", "70"],
        ["from", "From", f'"Ann Lee" <sip:{from_user}@{domain}>;tag={secrets.token_hex(4)}'],
        ["to", "To", to or f"<{ruri}>"],
        ["call-id", "Call-ID", call_id],
        ["cseq", "CSeq", f"{cseq} INVITE"],
        ["contact", "Contact", f"<sip:{from_user}@{host}:{port}>"],
    ]
    headers += [["record-route", "Record-Route", rr] for rr in record_route or []]
    req = Request("INVITE", ruri, headers, b"")
    if sdp is not None:
        req.set("content-type", "application/sdp")
        req.body = sdp
    if pidf is not None:
        attach_location(req, pidf=pidf, cid=cid or f"loc-{secrets.token_hex(4)}@{domain}", callback=callback,
                        host=domain, loc_src=domain)
    elif callback is not None:
        req.set("p-asserted-identity", f"<sip:{callback}@{domain};user=phone>")
    return req
