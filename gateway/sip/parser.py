"""Bytes → :class:`Request`/:class:`Response` (RFC 3261 §7, §18.3, §25).

The parser does the work every message needs and nothing more: split the
start line and the header lines (unfolding continuation lines), expand
compact names, frame the body by Content-Length, and run the cheap checks
that decide whether the bytes are a SIP message at all (the RFC 4475
verdicts): start-line grammar, version, required headers present once,
CSeq method equal to the request method, numeric ranges. Everything else
(name-addr, Via parameters, URIs) is parsed on access by the message.

:func:`validate_for_proxy` is the second stage: it reads every typed field a
proxy or registrar relies on, so a message that passes it cannot fail later
in the middle of routing. The gateway calls it right after parsing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from gateway.sip.errors import ParseError
from gateway.sip.headers import (
    COMPACT,
    DIGITS,
    TOKEN_CHARS,
    WS,
    Via,
    canonical_name,
    header_key,
    parse_top_via,
)
from gateway.sip.headers import (
    GEN_VALUE_CHARS as _GEN_VALUE_CHARS,
)
from gateway.sip.message import Message, Request, Response
from gateway.sip.uri import SipURI

__all__ = [
    "MAX_BODY",
    "MAX_HEADER_BYTES",
    "MAX_MESSAGE_SIZE",
    "StreamFramer",
    "build_response",
    "local_tag",
    "parse_message",
    "validate_for_proxy",
]

#: Largest datagram (and largest message handed to :func:`parse_message`).
MAX_MESSAGE_SIZE: Final = 65535
#: Stream transports: largest start line + header block.
MAX_HEADER_BYTES: Final = 16384
#: Stream transports: largest body.
MAX_BODY: Final = 1 << 20

#: Headers that may appear once only (RFC 3261 §7.3.1, §20).
_SINGLE: Final = frozenset(
    {"from", "to", "call-id", "cseq", "max-forwards", "content-length", "content-type", "expires"}
)
_REQUIRED: Final = (("via", "Via"), ("from", "From"), ("to", "To"), ("call-id", "Call-ID"), ("cseq", "CSeq"))

#: Header names that need no token check (already known to be tokens).
_KNOWN: Final = frozenset(COMPACT) | frozenset(COMPACT.values()) | frozenset(
    {
        "cseq",
        "max-forwards",
        "expires",
        "route",
        "record-route",
        "user-agent",
        "server",
        "allow",
        "accept",
        "authorization",
        "proxy-authorization",
        "www-authenticate",
        "proxy-authenticate",
        "require",
        "proxy-require",
        "unsupported",
        "min-expires",
        "date",
        "timestamp",
        "organization",
        "priority",
        "warning",
        "retry-after",
        "reply-to",
        "in-reply-to",
        "call-info",
        "alert-info",
        "error-info",
        "content-disposition",
        "content-language",
        "accept-encoding",
        "accept-language",
        "mime-version",
        "authentication-info",
        "p-asserted-identity",
        "p-preferred-identity",
        "privacy",
        "path",
        "rack",
        "rseq",
        "min-se",
        "replaces",
        "diversion",
    }
)


def _name_table() -> dict[str, str]:
    """Exact spellings of common header names → key, to skip lower()/lookups."""
    table: dict[str, str] = {}
    for key in _KNOWN:
        if len(key) == 1:
            table[key] = COMPACT[key]
            table[key.upper()] = COMPACT[key]
            continue
        for spelling in (key, canonical_name(key), key.upper()):
            table[spelling] = key
    return table


#: constant lookup table built once at import (never mutated)
_NAME_KEY: Final[dict[str, str]] = _name_table()

_METHODS_NEED_NO_CHECK: Final = frozenset(
    {"INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS", "INFO", "UPDATE", "PRACK",
     "SUBSCRIBE", "NOTIFY", "REFER", "MESSAGE", "PUBLISH"}
)

_SCHEME_CHARS: Final = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-."
_WKDAYS: Final = frozenset({"Mon,", "Tue,", "Wed,", "Thu,", "Fri,", "Sat,", "Sun,"})
_MONTHS: Final = frozenset(
    {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}
)


def _version_error(version: str) -> ParseError:
    """505 for a well-formed SIP version other than 2.0, 400 for garbage."""
    name, slash, number = version.partition("/")
    major, dot, minor = number.partition(".")
    if (
        slash
        and dot
        and name.upper() == "SIP"
        and major
        and minor
        and not major.strip(DIGITS)
        and not minor.strip(DIGITS)
    ):
        return ParseError("Version Not Supported", 505)
    return ParseError("Malformed start line")


def _unfold(text: str, sep: str) -> list[str]:
    """Header lines with continuation lines (leading SP/HT) joined by one space."""
    out: list[str] = []
    for line in text.split(sep):
        if line and (line[0] == " " or line[0] == "\t"):
            if not out:
                raise ParseError("Malformed header line")
            out[-1] = out[-1].rstrip(WS) + " " + line.strip(WS)
        else:
            out.append(line)
    return out


def _lenient_top_via(value: str) -> Via | None:
    """Protocol and sent-by of a top Via whose parameters are malformed.

    Only used to route a 400 back (RFC 4475 badinv01: ``;;,;,,`` after the
    sent-by); malformed parameters are skipped. None when even the sent-by
    cannot be read.
    """
    first = value.split(",", 1)[0]
    semi = first.find(";")
    try:
        via = parse_top_via(first if semi < 0 else first[:semi])
    except ParseError:
        return None
    params: dict[str, str | None] = {}
    if semi >= 0:
        for part in first[semi + 1 :].split(";"):
            name, eq, param = part.partition("=")
            name = name.strip(WS).lower()
            param = param.strip(WS)
            if not name or name.strip(TOKEN_CHARS) or (eq and (not param or param.strip(_GEN_VALUE_CHARS))):
                continue
            if name == "rport" and param and (param.strip(DIGITS) or len(param) > 5):
                continue
            params[name] = param if eq else None
    via.params = params
    via.raw = first.strip(WS)
    return via


def _readable(msg: Message) -> bool:
    """Whether a 400 can be built and routed for this request (RFC 3261 §8.2.6).

    Needs From, To, Call-ID and CSeq lines (copied as received) and a top
    Via that tells where to send the answer; when the top Via's parameters
    are malformed, a lenient reading of it is cached as ``top_via`` so that
    the transport can route the 400.
    """
    if not isinstance(msg, Request):
        return False
    if not all(msg.get(key) is not None for key in ("from", "to", "call-id", "cseq")):
        return False
    try:
        msg.top_via  # noqa: B018 - parsing it is the point
    except ParseError:
        value = msg.get("via")
        lenient = None if value is None else _lenient_top_via(value)
        if lenient is None:
            return False
        msg._cache["top_via"] = lenient
    return True


def _fail(msg: Message | None, error: ParseError) -> ParseError:
    if isinstance(msg, Request) and error.partial is None and _readable(msg):
        msg.body = b""
        error.partial = msg
    return error


def parse_message(data: bytes, *, max_size: int = MAX_HEADER_BYTES + 4 + MAX_BODY) -> Request | Response:
    """Parse one UDP datagram or one framed stream message.

    Content-Length frames the body: a body shorter than it is an error
    (``Content-Length exceeds body``), octets beyond it are ignored (RFC 3261
    §18.3: a datagram may carry trailing junk). Without Content-Length the
    body is the rest of the datagram.

    Raises :class:`ParseError`; its ``partial`` holds the request when its
    Via/From/To/Call-ID/CSeq were readable, so the gateway can answer 400.
    ``max_size`` bounds the input (413 beyond it); the default admits what
    :class:`StreamFramer` can emit, a datagram is bounded by
    :data:`MAX_MESSAGE_SIZE` anyway.
    """
    n = len(data)
    if n > max_size:
        raise ParseError("Message Too Large", 413)
    start = 0
    # RFC 3261 §7.5: CRLFs before the start line are ignored
    while data.startswith(b"\r\n", start):
        start += 2
    if start == n:
        raise ParseError("Empty message")
    hend = data.find(b"\r\n\r\n", start)
    sep = "\r\n"
    truncated = False
    if hend >= 0:
        body_start = hend + 4
    elif b"\r" not in data and (lf := data.find(b"\n\n", start)) >= 0:
        # bare LF line ends: not RFC 3261, but common in hand-written tests
        hend, body_start, sep = lf, lf + 2, "\n"
    else:
        truncated = True
        hend = n - 2 if data.endswith(b"\r\n") else n
        body_start = n
    head = data[start:hend].decode("utf-8", "surrogateescape")

    # ---- start line
    nl = head.find(sep)
    if nl < 0:
        first, rest = head, ""
    else:
        first, rest = head[:nl], head[nl + len(sep) :]
    msg: Request | Response
    error: ParseError | None = None
    if first[:4].upper() == "SIP/":
        parts = first.split(" ", 2)
        if len(parts) < 2:
            raise ParseError("Malformed Status-Line")
        version, code = parts[0], parts[1]
        if version.upper() != "SIP/2.0":
            raise _version_error(version)
        if len(code) != 3 or code.strip(DIGITS) or code[0] == "0" or code[0] > "6":
            raise ParseError("Malformed Status-Line")
        msg = Response.__new__(Response)
        msg.status = int(code)
        msg.reason = parts[2] if len(parts) == 3 else ""
        msg.version = version
        method = ""
    else:
        parts = first.split(" ")
        msg = Request.__new__(Request)
        if len(parts) != 3 or not parts[0] or not parts[1] or not parts[2]:
            # keep going: the headers may still allow a 400 to be sent back
            error = ParseError("Malformed Request-Line")
            method, uri, version = first.split(" ", 1)[0], "", ""
        else:
            method, uri, version = parts
        msg.method = method
        msg.uri = uri
        msg.version = version
        if method not in _METHODS_NEED_NO_CHECK and (not method or method.strip(TOKEN_CHARS)):
            raise ParseError("Malformed Request-Line")
        colon = uri.find(":")
        if error is not None:
            pass
        elif (
            colon <= 0
            or not uri[0].isalpha()
            or uri[:colon].strip(_SCHEME_CHARS)
            or "\t" in uri
            or "<" in uri
            or ">" in uri
        ):
            error = ParseError("Malformed Request-URI")
        elif version.upper() != "SIP/2.0":
            error = _version_error(version)

    # ---- header lines
    if (sep + " ") in rest or (sep + "\t") in rest:
        lines = _unfold(rest, sep)
    elif rest:
        lines = rest.split(sep)
    else:
        lines = []
    headers: list[list[str]] = []
    idx: dict[str, int] = {}
    name_key = _NAME_KEY
    # a plain loop: measured faster here than comprehensions plus a fix-up pass
    for i, line in enumerate(lines):
        name, colon_found, value = line.partition(":")
        key = name_key.get(name) if colon_found else None
        if key is None:
            if not colon_found:
                raise ParseError("Malformed header line")
            name = name.rstrip(WS)
            key = name.lower()
            if key not in _KNOWN:
                if not key or key.strip(TOKEN_CHARS):
                    raise ParseError("Malformed header line")
            elif len(key) == 1:
                key = COMPACT[key]
        headers.append([key, name, value.strip(WS)])
        if idx.setdefault(key, i) != i and key in _SINGLE and error is None:
            error = ParseError(f"Duplicate {canonical_name(key)} header")
    msg.headers = headers
    msg.body = b""
    msg._idx = idx
    msg._cache = {}
    msg._raw = None
    msg._raw_body = None
    msg._raw_count = 0

    # ---- checks every element needs (RFC 4475 §3.1.2, §3.3)
    if error is not None:
        raise _fail(msg, error)
    if truncated:
        raise _fail(msg, ParseError("Missing empty line after headers"))
    for key, what in _REQUIRED:
        if key not in idx:
            raise _fail(msg, ParseError(f"Missing {what} header"))
    try:
        cseq = msg.cseq
        if method and cseq.method != method:
            raise ParseError("CSeq method mismatch")
        if "max-forwards" in idx:
            msg.max_forwards  # noqa: B018 - range check
        if "expires" in idx:
            msg.expires  # noqa: B018 - range check
        length = msg.content_length
    except ParseError as exc:
        raise _fail(msg, exc) from None

    # ---- body framing
    if length is None:
        msg.body = data[body_start:]
    else:
        end = body_start + length
        if end > n:
            raise _fail(msg, ParseError("Content-Length exceeds body"))
        msg.body = data[body_start:end]
        if sep == "\r\n":
            # keep the received header block for byte-exact re-serialisation
            msg._raw = data[data.find(b"\r\n", start) + 2 : body_start]
            msg._raw_body = msg.body
            msg._raw_count = len(headers)
    return msg


def _check_date(value: str) -> None:
    """RFC 3261 §20.17: ``Date: Sat, 13 Nov 2010 23:29:00 GMT`` (rfc1123-date)."""
    parts = value.split()
    if (
        len(parts) != 6
        or parts[0] not in _WKDAYS
        or len(parts[1]) != 2
        or parts[1].strip(DIGITS)
        or parts[2] not in _MONTHS
        or len(parts[3]) != 4
        or parts[3].strip(DIGITS)
        or parts[5] != "GMT"
    ):
        raise ParseError("Malformed Date header")
    hms = parts[4].split(":")
    if len(hms) != 3 or any(len(x) != 2 or x.strip(DIGITS) for x in hms):
        raise ParseError("Malformed Date header")


def validate_for_proxy(msg: Request | Response) -> None:
    """Read every field a proxy/registrar uses; raise :class:`ParseError` if one is bad.

    Reads top Via, Call-ID, CSeq, From/To (with tags), Max-Forwards,
    Content-Length, Content-Type, Expires, Contact, Route, Record-Route and,
    for requests, the Request-URI (a SIP Request-URI must not carry
    ``?headers``, RFC 3261 §19.1.1) and the Date format. Sets ``partial``
    on the error when a 400 can be built.
    """
    try:
        msg.top_via  # noqa: B018
        msg.call_id  # noqa: B018
        msg.cseq  # noqa: B018
        msg.from_  # noqa: B018
        msg.to  # noqa: B018
        msg.max_forwards  # noqa: B018
        msg.content_length  # noqa: B018
        msg.content_type  # noqa: B018
        msg.expires  # noqa: B018
        msg.contacts  # noqa: B018
        msg.routes  # noqa: B018
        msg.record_routes  # noqa: B018
        if isinstance(msg, Request):
            ruri = msg.ruri
            if isinstance(ruri, SipURI) and ruri.headers is not None:
                raise ParseError("Malformed Request-URI")
        date = msg.get("date")
        if date is not None:
            _check_date(date)
    except ParseError as exc:
        raise _fail(msg, exc) from None


def build_response(
    req: Request,
    status: int,
    reason: str,
    *,
    to_tag: str | None = None,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
) -> Response:
    """A response to ``req`` per RFC 3261 §8.2.6.

    Copies every Via line and the first From, To, Call-ID and CSeq as
    received, adds ``;tag=to_tag`` to To when given and To has no tag, then
    ``headers`` in order and Content-Length. Works on a ``partial`` request
    whose From/To would not parse (to answer it with 400).
    """
    out: list[list[str]] = []
    seen: set[str] = set()
    for key, name, value in req.headers:
        if key == "via":
            out.append([key, name, value])
        elif key in ("from", "to", "call-id", "cseq") and key not in seen:
            seen.add(key)
            if key == "to" and to_tag is not None and not _has_tag(req, value):
                value = f"{value};tag={to_tag}"
            out.append([key, name, value])
    for name, value in headers:
        out.append([header_key(name), name, value])
    out.append(["content-length", "Content-Length", str(len(body))])
    return Response(status, reason, out, body)


def local_tag(req: Request) -> str | None:
    """The To tag of a server's own answer to ``req`` (None in-dialog): derived from Call-ID and
    branch, so a retransmitted request that is answered again gets the same tag."""
    if req.to_tag is not None:
        return None
    return "vl" + format(hash((req.call_id, req.top_via.branch)) & 0xFFFFFFFFFF, "x")


def _has_tag(req: Request, value: str) -> bool:
    try:
        return req.to_tag is not None
    except ParseError:
        # a malformed To: look for the parameter the simple way
        return ";tag=" in value.replace(" ", "").replace("\t", "").lower()


def _stream_content_length(head: bytes) -> int:
    """Content-Length of a stream message head (RFC 3261 §18.3: mandatory)."""
    if b"\r\n " in head or b"\r\n\t" in head:
        head = head.replace(b"\r\n ", b" ").replace(b"\r\n\t", b" ")
    length: int | None = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        lname = name.strip().lower()
        if lname == b"content-length" or lname == b"l":
            value = value.strip()
            if not value.isdigit() or len(value.lstrip(b"0")) > 10:
                raise ParseError("Malformed Content-Length header")
            if length is not None and length != int(value):
                raise ParseError("Duplicate Content-Length header")
            length = int(value)
    if length is None:
        raise ParseError("Missing Content-Length header")
    return length


class StreamFramer:
    """Cut a TCP/TLS byte stream into whole SIP messages (RFC 3261 §18.3).

    Feed it what the socket delivered; it returns the complete messages
    (as bytes for :func:`parse_message`) and keeps the remainder. CRLF
    keep-alives between messages (RFC 5626 §4.4.1) are skipped. Memory is
    bounded by ``max_header_bytes + max_body``: a header block or body
    beyond the limits raises :class:`ParseError` (400/413); after an error
    the stream cannot be resynchronised and every later ``feed`` raises
    the same error, so the transport should answer (if ``partial``) and
    close the connection.
    """

    __slots__ = ("_buf", "_error", "max_body", "max_header_bytes")

    def __init__(self, max_header_bytes: int = MAX_HEADER_BYTES, max_body: int = MAX_BODY) -> None:
        self._buf = bytearray()
        self._error: ParseError | None = None
        self.max_header_bytes = max_header_bytes
        self.max_body = max_body

    @property
    def buffered(self) -> int:
        """Bytes held back waiting for the rest of a message."""
        return len(self._buf)

    def _fail(self, error: ParseError, head: bytes | None) -> ParseError:
        if head is not None and error.partial is None:
            try:
                msg = parse_message(head + b"\r\n\r\n")
                if _readable(msg):
                    error.partial = msg
            except ParseError as exc:
                error.partial = exc.partial
        self._error = error
        self._buf = bytearray()
        return error

    def feed(self, data: bytes) -> list[bytes]:
        if self._error is not None:
            raise self._error
        buf = self._buf
        buf += data
        out: list[bytes] = []
        while buf:
            skip = 0
            while buf[skip : skip + 2] == b"\r\n":
                skip += 2
            if skip:
                del buf[:skip]
                if not buf:
                    break
            hend = buf.find(b"\r\n\r\n", 0, self.max_header_bytes + 4)
            if hend < 0:
                if len(buf) > self.max_header_bytes:
                    raise self._fail(ParseError("Header section too large", 400), None)
                break
            head = bytes(buf[:hend])
            try:
                length = _stream_content_length(head)
            except ParseError as exc:
                raise self._fail(exc, head) from None
            if length > self.max_body:
                raise self._fail(ParseError("Message Too Large", 413), head)
            total = hend + 4 + length
            if len(buf) < total:
                break
            out.append(bytes(buf[:total]))
            del buf[:total]
        return out
