"""Location conveyance in SIP (RFC 6442): the multipart body, the headers, and reading them back.

Why pure and SIP-library free: the gateway adds location to an emergency
INVITE, and the PSAP simulator judges INVITEs from anyone; both work on
header *values* and body bytes, so this module takes and returns strings
and bytes and never imports the SIP stack.

By value (the only way voiplab sends it): the INVITE body becomes
``multipart/mixed`` with the SDP offer and an ``application/pidf+xml`` part
whose ``Content-ID`` the ``Geolocation: <cid:…>`` header names::

    Geolocation: <cid:loc-7c2e@gw.example.net>;loc-src=gw.example.net
    Geolocation-Routing: no
    Content-Type: multipart/mixed;boundary=voiplab-…

    --voiplab-…
    Content-Type: application/sdp
    …
    --voiplab-…
    Content-Type: application/pidf+xml
    Content-ID: <loc-7c2e@gw.example.net>

    <?xml …?><presence …>…</presence>
    --voiplab-…--

The callback number travels as ``P-Asserted-Identity`` (RFC 3325), a SIP
URI with ``user=phone`` holding the E.164 number.

Reading back, `extract_location` maps every failure to the RFC 6442 §4.3
``Geolocation-Error`` code a 424 should carry (100 cannot process, 300
dereference failure for location by reference, which voiplab does not fetch).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import unquote

from e911.civic import is_e164

SDP = "application/sdp"
PIDF = "application/pidf+xml"
TEXT = "text/plain"

#: RFC 6442 §4.3 location error codes and their reason texts
GEOLOCATION_ERRORS: dict[int, str] = {
    100: "Cannot Process Location",
    200: "Permission To Use Location Information",
    201: "Permission To Retransmit Location Information to a Third Party",
    202: "Permission to Route based on Location Information",
    300: "Dereference Failure",
}

_BOUNDARY_OK = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")  # RFC 2046 bchars


class ConveyanceError(ValueError):
    """Location that cannot be read from a request; `code` is the Geolocation-Error code for a 424."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def geolocation_error(self) -> str:
        """The ``Geolocation-Error`` header value, e.g. ``100;code="Cannot Process Location"``."""
        return geolocation_error_value(self.code)


def geolocation_error_value(code: int) -> str:
    return f'{code};code="{GEOLOCATION_ERRORS.get(code, "Cannot Process Location")}"'


@dataclass(frozen=True, slots=True)
class BodyPart:
    """One MIME part: its headers as (lower-case name, value), content type without params, body."""

    headers: tuple[tuple[str, str], ...]
    content_type: str
    body: bytes
    #: False when the part had no blank line between headers and body (RFC 6442 erratum 5027)
    blank_line: bool = True

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k == name), None)

    @property
    def content_id(self) -> str | None:
        """The Content-ID without its angle brackets."""
        value = self.header("content-id")
        return value.strip().strip("<>").strip() if value else None


@dataclass(frozen=True, slots=True)
class GeolocationValue:
    """One value of a Geolocation header: the URI inside <> and its parameters (loc-src …)."""

    uri: str
    params: tuple[tuple[str, str | None], ...] = ()

    @property
    def scheme(self) -> str:
        return self.uri.split(":", 1)[0].lower() if ":" in self.uri else ""

    @property
    def cid(self) -> str | None:
        """For a cid: URL, the Content-ID it names (%-decoded, RFC 2392)."""
        return unquote(self.uri.split(":", 1)[1]) if self.scheme == "cid" else None


@dataclass(frozen=True, slots=True)
class ConveyedLocation:
    """What an INVITE carried: the PIDF-LO bytes by value and the SDP offer, if any."""

    cid: str
    pidf: bytes
    sdp: bytes | None
    routing_allowed: bool
    geolocation: tuple[GeolocationValue, ...]
    notes: tuple[str, ...] = ()


# --- building -------------------------------------------------------------------------------

def new_content_id(host: str, token: str | None = None) -> str:
    """A fresh Content-ID (addr-spec form, no brackets) for a PIDF-LO part: ``loc-<hex>@host``."""
    return f"loc-{token or secrets.token_hex(6)}@{host}"


def build_multipart(parts: Sequence[tuple[Sequence[tuple[str, str]], bytes]],
                    boundary: str | None = None) -> tuple[str, bytes]:
    """``(Content-Type value, body)`` of a multipart/mixed body with CRLF line ends (RFC 2046 §5.1).

    A random boundary is chosen (and re-chosen while it occurs in a part);
    an explicit one that occurs in a part, or is not valid, raises ValueError.
    """
    if boundary is None:
        boundary = "voiplab-" + secrets.token_hex(12)
        while any(boundary.encode() in body for _, body in parts):
            boundary = "voiplab-" + secrets.token_hex(12)
    elif not _BOUNDARY_OK.fullmatch(boundary) or any(boundary.encode() in body for _, body in parts):
        raise ValueError(f"unusable multipart boundary {boundary!r}")
    delimiter = b"--" + boundary.encode()
    out = bytearray()
    for headers, body in parts:
        out += delimiter + b"\r\n"
        for name, value in headers:
            out += f"{name}: {value}\r\n".encode()
        out += b"\r\n" + body + b"\r\n"  # this CRLF belongs to the next delimiter (RFC 2046 §5.1.1)
    out += delimiter + b"--\r\n"
    quoted = f'"{boundary}"' if " " in boundary or ":" in boundary else boundary
    return f"multipart/mixed;boundary={quoted}", bytes(out)


def location_body(pidf: bytes, cid: str, sdp: bytes | None = None,
                  boundary: str | None = None) -> tuple[str, bytes]:
    """The INVITE body carrying the SDP offer (when there is one) and the PIDF-LO by value."""
    parts: list[tuple[Sequence[tuple[str, str]], bytes]] = []
    if sdp is not None:
        parts.append(([("Content-Type", SDP)], sdp))
    parts.append(([("Content-Type", PIDF), ("Content-ID", f"<{cid}>")], pidf))
    return build_multipart(parts, boundary)


def geolocation_headers(cid: str, *, routing_allowed: bool = False,
                        loc_src: str | None = None) -> list[tuple[str, str]]:
    """``Geolocation`` (by value, cid:), ``Geolocation-Routing`` and the ``Accept`` for a 424 body.

    ``loc-src`` (RFC 8787) names the node that inserted the location; it
    only belongs on values a proxy adds.
    """
    value = f"<cid:{cid}>" + (f";loc-src={loc_src}" if loc_src else "")
    return [("Geolocation", value), ("Geolocation-Routing", "yes" if routing_allowed else "no")]


def callback_identity(callback: str, host: str, display: str | None = None) -> str:
    """The ``P-Asserted-Identity`` value for an E.164 callback: ``"Name" <sip:+1…@host;user=phone>``."""
    if not is_e164(callback):
        raise ValueError(f"callback {callback!r} is not E.164")
    name = ""
    if display:
        escaped = display.replace("\\", "\\\\").replace('"', '\\"')
        name = f'"{escaped}" '
    return f"{name}<sip:{callback}@{host};user=phone>"


# --- parsing --------------------------------------------------------------------------------

def _split_params(text: str) -> list[str]:
    """Split on ';' outside double quotes."""
    out: list[str] = []
    cur: list[str] = []
    quoted = escape = False
    for ch in text:
        if escape:
            cur.append(ch)
            escape = False
        elif ch == "\\" and quoted:
            cur.append(ch)
            escape = True
        elif ch == '"':
            cur.append(ch)
            quoted = not quoted
        elif ch == ";" and not quoted:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


def _params(items: Iterable[str]) -> tuple[tuple[str, str | None], ...]:
    out: list[tuple[str, str | None]] = []
    for item in items:
        item = item.strip()
        if not item:
            continue
        name, eq, value = item.partition("=")
        v = value.strip() if eq else None
        if v is not None and len(v) >= 2 and v[0] == v[-1] == '"':
            v = v[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        out.append((name.strip().lower(), v))
    return tuple(out)


def parse_content_type(value: str) -> tuple[str, dict[str, str | None]]:
    """``("multipart/mixed", {"boundary": "b1"})`` from a Content-Type value."""
    head, *rest = _split_params(value)
    return head.strip().lower(), dict(_params(rest))


def parse_multipart(content_type: str, body: bytes) -> list[BodyPart]:
    """The parts of a multipart body (RFC 2046 §5.1); ConveyanceError(100) when it is not one.

    Tolerant where senders slip in practice: LF-only line ends, whitespace
    after a boundary, a missing close delimiter, and no blank line between a
    part's headers and its body when the body clearly starts (``<``, ``v=``),
    the RFC 6442 example's own mistake (erratum 5027, noted on the part).
    """
    media, params = parse_content_type(content_type)
    if not media.startswith("multipart/"):
        raise ConveyanceError(100, f"body is {media or 'untyped'}, not multipart")
    boundary = params.get("boundary")
    if not boundary:
        raise ConveyanceError(100, "multipart Content-Type without a boundary")
    delimiter = re.compile(rb"(?:^|\r?\n)--" + re.escape(boundary.encode()) + rb"(--)?[ \t]*(?:\r?\n|$)")
    matches = list(delimiter.finditer(body))
    if not matches:
        raise ConveyanceError(100, f"multipart boundary {boundary!r} not found in the body")
    parts: list[BodyPart] = []
    for current, following in zip(matches, [*matches[1:], None], strict=True):
        if current.group(1):  # close delimiter
            break
        end = following.start() if following is not None else len(body)
        parts.append(_parse_part(body[current.end():end]))
    if not parts:
        raise ConveyanceError(100, "multipart body without parts")
    return parts


def _parse_part(raw: bytes) -> BodyPart:
    headers: list[tuple[str, str]] = []
    lines = raw.split(b"\n")
    index, blank = 0, False
    while index < len(lines):
        line = lines[index].rstrip(b"\r")
        if not line:
            blank = True
            index += 1
            break
        if line[:1] in (b" ", b"\t") and headers:  # folded header line
            prev_name, prev_value = headers[-1]
            headers[-1] = (prev_name, f"{prev_value} {line.strip().decode('utf-8', 'replace')}")
            index += 1
            continue
        raw_name, colon, raw_value = line.partition(b":")
        if not colon or not re.fullmatch(rb"[!-9;-~]+", raw_name):
            break  # the body started without the blank line (erratum 5027)
        headers.append((raw_name.decode("ascii").lower(), raw_value.strip().decode("utf-8", "replace")))
        index += 1
    body = b"\n".join(lines[index:])
    content_type = next((v for k, v in headers if k == "content-type"), "text/plain")
    return BodyPart(tuple(headers), parse_content_type(content_type)[0], body, blank)


def parse_geolocation(values: Iterable[str]) -> list[GeolocationValue]:
    """Every ``<uri>;params`` of one or more Geolocation header lines (comma-separated values)."""
    out: list[GeolocationValue] = []
    for line in values:
        for item in _split_commas(line):
            item = item.strip()
            if not item:
                continue
            m = re.fullmatch(r"<([^<>]*)>(.*)", item, re.S)
            if m is None:
                raise ConveyanceError(100, f"Geolocation value {item!r} is not <URI>;params")
            uri = m.group(1).strip()
            if ":" not in uri:
                raise ConveyanceError(100, f"Geolocation URI {uri!r} has no scheme")
            rest = m.group(2).strip()
            if rest and not rest.startswith(";"):
                raise ConveyanceError(100, f"junk after the Geolocation URI: {rest!r}")
            out.append(GeolocationValue(uri, _params(_split_params(rest)[1:] if rest else [])))
    return out


def _split_commas(text: str) -> list[str]:
    out: list[str] = []
    cur: list[str] = []
    depth, quoted = 0, False
    for ch in text:
        if ch == '"' and depth == 0:
            quoted = not quoted
        elif not quoted and ch == "<":
            depth += 1
        elif not quoted and ch == ">":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0 and not quoted:
            out.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    out.append("".join(cur))
    return out


def routing_allowed(value: str | None) -> bool:
    """``Geolocation-Routing``: "yes" allows routing on location; absent or anything else means no."""
    return value is not None and value.strip().lower() == "yes"


def extract_location(geolocation: Sequence[str], routing: str | None, content_type: str | None,
                     body: bytes) -> ConveyedLocation:
    """The PIDF-LO a request carries by value, or ConveyanceError with the Geolocation-Error code.

    ``geolocation``: the request's Geolocation header values (may be
    empty: error 100 "no Geolocation header"); the first ``cid:`` value is
    used, by-reference values alone give 300 (voiplab does not dereference).
    """
    values = parse_geolocation(geolocation)
    if not values:
        raise ConveyanceError(100, "no Geolocation header")
    by_value = [v for v in values if v.cid is not None]
    if not by_value:
        schemes = ", ".join(sorted({v.scheme for v in values}))
        raise ConveyanceError(300, f"location only by reference ({schemes}); voiplab needs it by value")
    cid = by_value[0].cid or ""
    if not content_type:
        raise ConveyanceError(100, f"Geolocation names cid:{cid} but the request has no body")
    media, _ = parse_content_type(content_type)
    notes: list[str] = []
    if not media.startswith("multipart/"):
        raise ConveyanceError(100, f"Geolocation names cid:{cid} but the body is {media}, not multipart")
    parts = parse_multipart(content_type, body)
    target = next((p for p in parts if p.content_id == cid), None)
    if target is None:
        ids = ", ".join(p.content_id for p in parts if p.content_id) or "none"
        raise ConveyanceError(100, f"no body part with Content-ID <{cid}> (parts have: {ids})")
    if target.content_type != PIDF:
        raise ConveyanceError(100, f"the part <{cid}> is {target.content_type}, not {PIDF}")
    if not target.blank_line:
        notes.append(f"part <{cid}> has no blank line after its headers (RFC 2046; RFC 6442 erratum 5027)")
    sdp = next((p.body for p in parts if p.content_type == SDP), None)
    return ConveyedLocation(cid=cid, pidf=target.body.strip(), sdp=sdp, routing_allowed=routing_allowed(routing),
                            geolocation=tuple(values), notes=tuple(notes))


def find_sdp(content_type: str | None, body: bytes) -> bytes | None:
    """The SDP of a request: the body itself, or its application/sdp part when multipart."""
    if not content_type or not body:
        return None
    media, _ = parse_content_type(content_type)
    if media == SDP:
        return body
    if media.startswith("multipart/"):
        try:
            parts = parse_multipart(content_type, body)
        except ConveyanceError:
            return None
        return next((p.body for p in parts if p.content_type == SDP), None)
    return None
