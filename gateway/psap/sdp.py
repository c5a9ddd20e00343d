"""The PSAP simulator's SDP answer: accept one G.711 audio stream (plus DTMF events) and nothing else.

Why so little: the simulator judges signalling; it never plays or records
audio. It still answers with a real port (a sink socket the server opens)
so that a caller's RTP does not bounce off ICMP port-unreachable.
"""

from __future__ import annotations

import re

#: static payload types we accept, in preference order
_STATIC = {"0": "PCMU/8000", "8": "PCMA/8000"}


def answer_sdp(offer: bytes | None, host: str, port: int, session_id: int = 1) -> bytes:
    """An SDP answer to `offer` (or an offer of our own when there is none, for an ACK answer).

    Picks PCMU or PCMA from the first audio stream, mirrors telephone-event,
    keeps the offer's transport profile; every other stream is refused with
    port 0 as RFC 3264 §6 requires (one m= line per offered m= line).
    """
    family = "IP6" if ":" in host else "IP4"
    head = [
        "v=0",
        f"o=voiplab-psap {session_id} {session_id} IN {family} {host}",
        "s=voiplab PSAP simulator",
        f"c=IN {family} {host}",
        "t=0 0",
    ]
    if offer is None:
        return _lines([*head, f"m=audio {port} RTP/AVP 0 8 101", "a=rtpmap:0 PCMU/8000",
                       "a=rtpmap:8 PCMA/8000", "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16",
                       "a=sendrecv"])
    text = offer.decode("utf-8", "replace")
    streams = _streams(text)
    body = list(head)
    audio_done = False
    for media, proto, formats, attrs in streams:
        codec = next((f for f in ("0", "8") if f in formats), None)
        if media != "audio" or audio_done or codec is None or "SAVP" in proto:
            body.append(f"m={media} 0 {proto} {formats[0] if formats else '0'}")
            continue
        audio_done = True
        events = _telephone_event(attrs, formats)
        payloads = [codec] + ([events] if events else [])
        body.append(f"m=audio {port} {proto} {' '.join(payloads)}")
        body.append(f"a=rtpmap:{codec} {_STATIC[codec]}")
        if events:
            body.append(f"a=rtpmap:{events} telephone-event/8000")
            body.append(f"a=fmtp:{events} 0-16")
        body.append("a=sendrecv")
    if not streams:
        body += [f"m=audio {port} RTP/AVP 0", "a=rtpmap:0 PCMU/8000", "a=sendrecv"]
    return _lines(body)


def _lines(lines: list[str]) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode()


def _streams(text: str) -> list[tuple[str, str, list[str], list[str]]]:
    """(media, proto, formats, attribute lines) per m= section."""
    out: list[tuple[str, str, list[str], list[str]]] = []
    for line in re.split(r"\r?\n", text):
        if line.startswith("m="):
            parts = line[2:].split()
            if len(parts) >= 3:
                out.append((parts[0], parts[2], parts[3:], []))
        elif line.startswith("a=") and out:
            out[-1][3].append(line[2:])
    return out


def _telephone_event(attrs: list[str], formats: list[str]) -> str | None:
    for attr in attrs:
        m = re.fullmatch(r"rtpmap:(\d+)\s+telephone-event/8000.*", attr, re.IGNORECASE)
        if m and m.group(1) in formats:
            return m.group(1)
    return None
