"""Header-level grammar of RFC 3261 §25: names, parameters, lists, Via, CSeq.

Everything here works on ``str`` values that the parser already unfolded
and stripped. The functions use ``find``/``split``/``partition`` and
``str.strip(charset)`` checks rather than regular expressions: a proxy reads
a handful of headers per message, thousands of times a second, and these
operations run in C.

Character-set checks use the idiom ``not s.strip(CHARS)``: ``str.strip`` with
an argument removes every leading and trailing character found in ``CHARS``,
so the result is empty exactly when ``s`` consists of those characters only.
"""

from __future__ import annotations

import re
from typing import Final, Literal, NamedTuple

from gateway.sip.errors import ParseError

__all__ = [
    "CANONICAL",
    "COMPACT",
    "CSeq",
    "Via",
    "canonical_name",
    "first_comma_value",
    "header_key",
    "is_token",
    "parse_cseq",
    "parse_params",
    "parse_top_via",
    "parse_via",
    "pop_first_value",
    "quoted_end",
    "split_commas",
    "unquote",
]

ALPHANUM: Final = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
#: RFC 3261 §25.1 token characters.
TOKEN_CHARS: Final = ALPHANUM + "-.!%*_+`'~"
#: What may follow "=" in a generic-param without quotes: token / host
#: (an IPv6 reference carries ":" and brackets).
GEN_VALUE_CHARS: Final = TOKEN_CHARS + ":[]"
#: Host names, IPv4 addresses (underscore tolerated: it is seen in the wild).
HOSTNAME_CHARS: Final = ALPHANUM + "-._"
IPV6_CHARS: Final = "0123456789abcdefABCDEF:."
DIGITS: Final = "0123456789"
WS: Final = " \t"

#: Compact header forms (RFC 3261 §7.3.3 and the extensions registered since).
COMPACT: Final[dict[str, str]] = {
    "v": "via",
    "m": "contact",
    "i": "call-id",
    "f": "from",
    "t": "to",
    "l": "content-length",
    "c": "content-type",
    "k": "supported",
    "s": "subject",
    "e": "content-encoding",
    "o": "event",
    "r": "refer-to",
    "b": "referred-by",
    "u": "allow-events",
    "x": "session-expires",
    "a": "accept-contact",
    "y": "identity",
    "j": "reject-contact",
    "d": "request-disposition",
}

#: Capitalisation used for headers this stack writes itself.
CANONICAL: Final[dict[str, str]] = {
    "via": "Via",
    "contact": "Contact",
    "call-id": "Call-ID",
    "cseq": "CSeq",
    "from": "From",
    "to": "To",
    "content-length": "Content-Length",
    "content-type": "Content-Type",
    "max-forwards": "Max-Forwards",
    "www-authenticate": "WWW-Authenticate",
    "proxy-authenticate": "Proxy-Authenticate",
    "authorization": "Authorization",
    "proxy-authorization": "Proxy-Authorization",
    "authentication-info": "Authentication-Info",
    "record-route": "Record-Route",
    "route": "Route",
    "mime-version": "MIME-Version",
    "rack": "RAck",
    "rseq": "RSeq",
    "sip-etag": "SIP-ETag",
    "sip-if-match": "SIP-If-Match",
    "identity": "Identity",
    "identity-info": "Identity-Info",
}


def header_key(name: str) -> str:
    """Canonical lookup key of a header name: lower case, compact form expanded."""
    key = name.lower()
    if len(key) == 1:
        return COMPACT.get(key, key)
    return key


def canonical_name(key: str) -> str:
    """The spelling used when this stack adds a header (``call-id`` → ``Call-ID``)."""
    name = CANONICAL.get(key)
    if name is not None:
        return name
    return "-".join(part[:1].upper() + part[1:] for part in key.split("-"))


def is_token(text: str) -> bool:
    """True when ``text`` is a non-empty RFC 3261 token."""
    return bool(text) and not text.strip(TOKEN_CHARS)


def quoted_end(text: str, start: int) -> int:
    """Index just past the quoted-string opening at ``text[start] == '"'``, or -1.

    Backslash escapes (quoted-pair) are honoured, so ``"a\\"b"`` is one string.
    """
    i = start + 1
    n = len(text)
    while True:
        q = text.find('"', i)
        if q < 0:
            return -1
        b = text.find("\\", i, q)
        if b < 0:
            return q + 1
        # an escape before the quote: skip the escaped character and go on
        i = b + 2
        if i > n:
            return -1


def unquote(text: str) -> str:
    """Content of a quoted-string with its quoted-pairs resolved."""
    inner = text[1:-1]
    if "\\" not in inner:
        return inner
    out: list[str] = []
    i = 0
    n = len(inner)
    while i < n:
        ch = inner[i]
        if ch == "\\" and i + 1 < n:
            out.append(inner[i + 1])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


#: scanners for the characters that matter when splitting a list
_SCAN: Final[dict[str, re.Pattern[str]]] = {
    ",": re.compile(r'[",<>]'),
    ";": re.compile(r'[";<>]'),
}


def _split_top(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside quoted strings and angle brackets.

    A one-character-class regex finds the next interesting character (the
    only regex here: it makes the scan run in C instead of per character).
    """
    search = _SCAN[sep].search
    parts: list[str] = []
    depth = 0
    start = 0
    pos = 0
    while (m := search(text, pos)) is not None:
        i = m.start()
        ch = text[i]
        if ch == '"':
            end = quoted_end(text, i)
            if end < 0:
                raise ParseError("Unterminated quoted string")
            pos = end
            continue
        if ch == "<":
            depth += 1
        elif ch == ">":
            if depth:
                depth -= 1
        elif not depth:
            parts.append(text[start:i])
            start = i + 1
        pos = i + 1
    parts.append(text[start:])
    return parts


def split_commas(text: str) -> list[str]:
    """Top-level comma-separated elements, stripped (quote- and angle-aware).

    An empty or blank ``text`` gives ``[]``; empty elements between commas
    are kept (as ``""``) so that a typed parser can reject them.
    """
    if "," not in text:
        # no comma at all: one element, whatever quotes it has (an
        # unterminated quote is then the element parser's to report)
        text = text.strip(WS)
        return [text] if text else []
    if not text.strip(WS):
        return []
    if '"' not in text and "<" not in text:
        return [p.strip(WS) for p in text.split(",")]
    return [p.strip(WS) for p in _split_top(text, ",")]


def first_comma_value(text: str) -> str:
    """The first element of a comma list, without splitting the rest."""
    comma = text.find(",")
    if comma < 0:
        return text.strip(WS)
    if '"' not in text and "<" not in text:
        return text[:comma].strip(WS)
    return _split_top(text, ",")[0].strip(WS)


def pop_first_value(text: str) -> tuple[str, str]:
    """Split a comma list into (first element, the rest as received, stripped).

    The rest keeps its own bytes (separators, spacing), so popping a Route or
    Via value leaves the others exactly as they were.
    """
    if '"' not in text and "<" not in text:
        first, _, rest = text.partition(",")
        return first.strip(WS), rest.strip(WS)
    first = _split_top(text, ",")[0]
    return first.strip(WS), text[len(first) + 1 :].strip(WS)


def parse_params(text: str) -> dict[str, str | None]:
    """Parse ``;a=b;c;d="x;y"`` (generic-params, LWS around ``;`` and ``=``).

    Keys are lower-cased, order is kept, flag parameters map to ``None`` and
    quoted values are returned without their quotes. A leading ``;`` is
    optional. Raises :class:`ParseError` on an empty or non-token name or a
    value that is neither token, host nor quoted-string.
    """
    if text[:1] == ";":
        text = text[1:]
    elif text[:1] in WS:
        text = text.strip(WS)
        if text.startswith(";"):
            text = text[1:]
    params: dict[str, str | None] = {}
    if '"' not in text and " " not in text and "\t" not in text:
        # the common case: no LWS, no quoted values
        for part in text.split(";"):
            name, eq, value = part.partition("=")
            if not name or name.strip(TOKEN_CHARS):
                raise ParseError("Malformed parameter")
            if eq:
                if not value or value.strip(GEN_VALUE_CHARS):
                    raise ParseError("Malformed parameter")
                params[name.lower()] = value
            else:
                params[name.lower()] = None
        return params
    text = text.strip(WS)
    if not text:
        raise ParseError("Malformed parameter")
    parts = text.split(";") if '"' not in text else _split_top(text, ";")
    for part in parts:
        name, eq, value = part.partition("=")
        name = name.strip(WS)
        if not name or name.strip(TOKEN_CHARS):
            raise ParseError("Malformed parameter")
        if eq:
            value = value.strip(WS)
            if value.startswith('"'):
                if len(value) < 2 or quoted_end(value, 0) != len(value):
                    raise ParseError("Malformed parameter")
                value = unquote(value)
            elif not value or value.strip(GEN_VALUE_CHARS):
                raise ParseError("Malformed parameter")
            params[name.lower()] = value
        else:
            params[name.lower()] = None
    return params


def check_host(host: str) -> str:
    """Validate a host (hostname, IPv4 or bracketed IPv6); return it lower-cased."""
    if not host:
        raise ParseError("Missing host")
    if host[0] == "[":
        if host[-1] != "]" or len(host) < 4 or host[1:-1].strip(IPV6_CHARS):
            raise ParseError("Malformed host")
        return host.lower()
    if host.strip(HOSTNAME_CHARS):
        raise ParseError("Malformed host")
    return host.lower()


def split_hostport(text: str) -> tuple[str, int | None]:
    """``host[:port]`` → (lower-cased host, port or None)."""
    if text[:1] == "[":
        close = text.find("]")
        if close < 0:
            raise ParseError("Malformed host")
        host = text[: close + 1]
        rest = text[close + 1 :]
        if not rest:
            return check_host(host), None
        if rest[0] != ":":
            raise ParseError("Malformed host")
        port_text = rest[1:]
    else:
        host, colon, port_text = text.partition(":")
        if not host or host.strip(HOSTNAME_CHARS):
            raise ParseError("Malformed host")
        if not colon:
            return host.lower(), None
    if not port_text or port_text.strip(DIGITS) or len(port_text) > 5:
        raise ParseError("Malformed port")
    port = int(port_text)
    if port > 65535:
        raise ParseError("Malformed port")
    return (check_host(host) if host[0] == "[" else host.lower()), port


class CSeq(NamedTuple):
    """CSeq: sequence number (< 2**31) and method (case-sensitive token)."""

    seq: int
    method: str


def parse_cseq(value: str) -> CSeq:
    """Parse ``1 INVITE`` (any LWS between, leading zeros allowed)."""
    parts = value.split()
    if len(parts) != 2:
        raise ParseError("Malformed CSeq header")
    num, method = parts
    if num.strip(DIGITS) or len(num.lstrip("0")) > 10 or method.strip(TOKEN_CHARS):
        raise ParseError("Malformed CSeq header")
    seq = int(num)
    if seq >= 2**31:
        raise ParseError("Malformed CSeq header")
    return CSeq(seq, method)


class Via:
    """One Via header value (RFC 3261 §20.42, §18.2; RFC 3581 rport)."""

    __slots__ = ("host", "params", "port", "raw", "transport")

    transport: str
    host: str
    port: int | None
    params: dict[str, str | None]
    raw: str

    def __init__(
        self,
        transport: str,
        host: str,
        port: int | None = None,
        params: dict[str, str | None] | None = None,
        raw: str = "",
    ) -> None:
        self.transport = transport
        self.host = host
        self.port = port
        self.params = params if params is not None else {}
        self.raw = raw or self._serialise()

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        return self.params.get("received")

    @property
    def rport(self) -> int | Literal[True] | None:
        if "rport" not in self.params:
            return None
        value = self.params["rport"]
        return True if value is None else int(value)

    @property
    def sent_by(self) -> tuple[str, int]:
        if self.port is not None:
            return self.host, self.port
        return self.host, 5061 if self.transport in ("TLS", "WSS") else 5060

    def _serialise(self) -> str:
        out = [f"SIP/2.0/{self.transport} {self.host}"]
        if self.port is not None:
            out.append(f":{self.port}")
        for key, value in self.params.items():
            out.append(f";{key}" if value is None else f";{key}={value}")
        return "".join(out)

    def __str__(self) -> str:
        """Serialisation of the current fields (``raw`` is what was received)."""
        return self._serialise()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Via):
            return NotImplemented
        return (self.transport, self.host, self.port, self.params) == (
            other.transport,
            other.host,
            other.port,
            other.params,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Via({self.raw!r})"


def _parse_one_via(text: str) -> Via:
    if text[:8].upper() == "SIP/2.0/" and (sp := text.find(" ", 8)) > 8:
        # the common spelling: no LWS inside sent-protocol
        transport = text[8:sp]
        rest = text[sp + 1 :]
    else:
        s1 = text.find("/")
        s2 = text.find("/", s1 + 1) if s1 >= 0 else -1
        if s2 < 0:
            raise ParseError("Malformed Via header")
        # sent-protocol: protocol-name and -version are tokens; "SIP/7.0" still
        # parses so that a 505 can be routed back (RFC 4475 badvers)
        name, version = text[:s1].strip(WS), text[s1 + 1 : s2].strip(WS)
        if not name or not version or name.strip(TOKEN_CHARS) or version.strip(TOKEN_CHARS):
            raise ParseError("Malformed Via header")
        parts = text[s2 + 1 :].split(None, 1)
        if len(parts) != 2:
            raise ParseError("Malformed Via header")
        transport, rest = parts
    if not transport or transport.strip(TOKEN_CHARS):
        raise ParseError("Malformed Via header")
    semi = rest.find(";")
    if semi < 0:
        sent_by, param_text = rest.strip(WS), ""
    else:
        sent_by, param_text = rest[:semi].strip(WS), rest[semi:]
    try:
        host, port = split_hostport(sent_by)
        params = parse_params(param_text) if param_text else {}
    except ParseError:
        raise ParseError("Malformed Via header") from None
    if "rport" in params:
        rport = params["rport"]
        if rport is not None and (rport.strip(DIGITS) or len(rport) > 5 or int(rport) > 65535):
            raise ParseError("Malformed Via header")
    via = Via.__new__(Via)
    via.transport = transport.upper()
    via.host = host
    via.port = port
    via.params = params
    via.raw = text
    return via


def parse_via(value: str) -> list[Via]:
    """All Via values of one header line (``a , b`` with LWS around commas)."""
    vias = [_parse_one_via(part) for part in split_commas(value)]
    if not vias:
        raise ParseError("Malformed Via header")
    return vias


def parse_top_via(value: str) -> Via:
    """Only the first Via value of a header line: the hot path of a proxy."""
    try:
        first = first_comma_value(value)
    except ParseError:
        raise ParseError("Malformed Via header") from None
    return _parse_one_via(first)
