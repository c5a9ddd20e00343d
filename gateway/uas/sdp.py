"""SDP for the built-in peers: answer one G.711 audio stream (plus DTMF events), refuse the rest.

Why so little: the built-in peers (PSTN, PSAP, conference) test signalling
and prove a media path with an RTP echo or sink; they never transcode. So
the answer picks PCMU or PCMA in the offerer's order of preference, mirrors
telephone-event, mirrors the direction (RFC 3264 §6.1: sendonly ↔ recvonly,
so a phone putting the call on hold gets a correct answer), and refuses every
other stream with port 0 (one m= line per offered m= line, §6).
"""

from __future__ import annotations

import re

from e911.conveyance import ConveyanceError, parse_multipart
from gateway.sip.message import Request

#: static payload types we accept
STATIC = {"0": "PCMU/8000", "8": "PCMA/8000"}
_DIRECTIONS = {"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive"}

Stream = tuple[str, str, list[str], list[str]]


def answer_sdp(offer: bytes | None, host: str, port: int, session_id: int = 1, *, version: int | None = None,
               origin: str = "voiplab", session_name: str = "voiplab") -> bytes:
    """An SDP answer to `offer`, or an offer of our own when there is none (the 2xx to an
    offerless INVITE carries the offer; the caller answers in its ACK).

    `version` is the o= line's session version (defaults to `session_id`);
    raise it when a later answer in the same dialog differs (RFC 3264 §8).
    """
    family = "IP6" if ":" in host else "IP4"
    ver = session_id if version is None else version
    head = [
        "v=0",
        f"o={origin} {session_id} {ver} IN {family} {host}",
        f"s={session_name}",
        f"c=IN {family} {host}",
        "t=0 0",
    ]
    if offer is None:
        return _lines([*head, f"m=audio {port} RTP/AVP 0 8 101", "a=rtpmap:0 PCMU/8000",
                       "a=rtpmap:8 PCMA/8000", "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16",
                       "a=sendrecv"])
    text = offer.decode("utf-8", "replace")
    streams = _streams(text)
    session_direction = _direction(_session_attrs(text)) or "sendrecv"
    body = list(head)
    audio_done = False
    for media, proto, formats, attrs in streams:
        codec = next((f for f in formats if f in STATIC), None)
        if media != "audio" or audio_done or codec is None or "SAVP" in proto:
            body.append(f"m={media} 0 {proto} {formats[0] if formats else '0'}")
            continue
        audio_done = True
        events = _telephone_event(attrs, formats)
        payloads = [codec] + ([events] if events else [])
        body.append(f"m=audio {port} {proto} {' '.join(payloads)}")
        body.append(f"a=rtpmap:{codec} {STATIC[codec]}")
        if events:
            body.append(f"a=rtpmap:{events} telephone-event/8000")
            body.append(f"a=fmtp:{events} 0-16")
        body.append("a=" + _DIRECTIONS[_direction(attrs) or session_direction])
    if not streams:
        body += [f"m=audio {port} RTP/AVP 0", "a=rtpmap:0 PCMU/8000", "a=sendrecv"]
    return _lines(body)


def offer_of(req: Request) -> bytes | None:
    """The SDP a request carries: its body, or the SDP part of a multipart body; None without one."""
    if not req.body:
        return None
    ctype = req.content_type
    if ctype == "application/sdp":
        return req.body
    if ctype is not None and ctype.startswith("multipart/"):
        try:
            parts = parse_multipart(req.get("content-type") or "", req.body)
        except ConveyanceError:
            return None
        return next((p.body for p in parts if p.content_type == "application/sdp"), None)
    return None


def media_address(sdp: bytes | None) -> tuple[str, int] | None:
    """Where the offerer receives audio (first audio m= line's port, its c= or the session c=)."""
    if not sdp:
        return None
    session_host: str | None = None
    host: str | None = None
    port: int | None = None
    section = "session"  # then "audio" (the first audio stream) or "other"
    for line in re.split(r"\r?\n", sdp.decode("utf-8", "replace")):
        if line.startswith("m="):
            if section == "audio":
                break
            parts = line[2:].split()
            if len(parts) >= 2 and parts[0] == "audio" and parts[1].isdigit():
                section, port = "audio", int(parts[1])
            else:
                section = "other"
        elif line.startswith("c="):
            parts = line[2:].split()
            if len(parts) >= 3:
                address = parts[2].split("/")[0]
                if section == "session":
                    session_host = address
                elif section == "audio":
                    host = address
    host = host or session_host
    if host is None or port is None or port == 0:
        return None
    return host, port


def _lines(lines: list[str]) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode()


def _session_attrs(text: str) -> list[str]:
    out = []
    for line in re.split(r"\r?\n", text):
        if line.startswith("m="):
            break
        if line.startswith("a="):
            out.append(line[2:])
    return out


def _streams(text: str) -> list[Stream]:
    """(media, proto, formats, attribute lines) per m= section."""
    out: list[Stream] = []
    for line in re.split(r"\r?\n", text):
        if line.startswith("m="):
            parts = line[2:].split()
            if len(parts) >= 3:
                out.append((parts[0], parts[2], parts[3:], []))
        elif line.startswith("a=") and out:
            out[-1][3].append(line[2:])
    return out


def _direction(attrs: list[str]) -> str | None:
    return next((a.strip() for a in attrs if a.strip() in _DIRECTIONS), None)


def _telephone_event(attrs: list[str], formats: list[str]) -> str | None:
    for attr in attrs:
        m = re.fullmatch(r"rtpmap:(\d+)\s+telephone-event/8000.*", attr, re.IGNORECASE)
        if m and m.group(1) in formats:
            return m.group(1)
    return None
