"""The SIP message model: raw header lines plus lazily parsed, cached fields.

A proxy forwards far more than it understands, so a message keeps every
header line as ``[key, name, value]`` with the value as received (decoded
UTF-8 with ``surrogateescape``: re-encoding gives the same bytes). Typed
views (``top_via``, ``from_tag``, ``cseq``...) are parsed on first access
and cached; a mutation through the methods below drops the cached views of
the key it touched.

Serialisation reuses the header block exactly as received while no header
was changed (the common case for responses relayed upstream), and rebuilds
it otherwise. If you edit ``headers`` in place instead of using the methods,
call :meth:`Message.touch` afterwards.
"""

from __future__ import annotations

from typing import Any, Final, Literal, cast

from gateway.sip.errors import ParseError
from gateway.sip.headers import (
    DIGITS,
    TOKEN_CHARS,
    WS,
    CSeq,
    Via,
    canonical_name,
    header_key,
    parse_cseq,
    parse_top_via,
    parse_via,
    pop_first_value,
    split_commas,
)
from gateway.sip.uri import URI, NameAddr, parse_name_addr, parse_uri

__all__ = ["Message", "Request", "Response"]

#: cached views that depend on each header key
_DEPENDENTS: Final[dict[str, tuple[str, ...]]] = {
    "via": ("vias", "top_via"),
    "from": ("from_",),
    "to": ("to",),
    "cseq": ("cseq",),
    "max-forwards": ("max_forwards",),
    "contact": ("contacts",),
    "route": ("routes",),
    "record-route": ("record_routes",),
    "expires": ("expires",),
    "content-type": ("content_type",),
    "content-length": ("content_length",),
}

_MISSING: Final = object()


def _uint(value: str, limit: int, what: str) -> int:
    """A decimal integer ``< limit`` (leading zeros allowed), else ParseError."""
    if not value or value.strip(DIGITS) or len(value.lstrip("0")) > 10:
        raise ParseError(f"Malformed {what} header")
    number = int(value)
    if number >= limit:
        raise ParseError(f"Malformed {what} header")
    return number


class Message:
    """Base of :class:`Request` and :class:`Response`."""

    __slots__ = ("_cache", "_idx", "_raw", "_raw_body", "_raw_count", "body", "headers")

    headers: list[list[str]]
    body: bytes

    def __init__(self, headers: list[list[str]] | None = None, body: bytes = b"") -> None:
        self.headers = headers if headers is not None else []
        self.body = body
        self._idx: dict[str, int] | None = None
        self._cache: dict[str, Any] = {}
        self._raw: bytes | None = None
        self._raw_body: bytes | None = None
        self._raw_count = 0

    # ------------------------------------------------------------------ raw access
    def _index(self) -> dict[str, int]:
        idx: dict[str, int] = {}
        for i, h in enumerate(self.headers):
            idx.setdefault(h[0], i)
        self._idx = idx
        return idx

    def get(self, key: str) -> str | None:
        """Value of the first header line with this key, or None."""
        idx = self._idx
        if idx is None:
            idx = self._index()
        i = idx.get(key)
        return None if i is None else self.headers[i][2]

    def get_all(self, key: str) -> list[str]:
        """Every header line's value for this key (not comma-split)."""
        idx = self._idx
        if idx is None:
            idx = self._index()
        first = idx.get(key)
        if first is None:
            return []
        return [h[2] for h in self.headers[first:] if h[0] == key]

    def values(self, key: str) -> list[str]:
        """Comma-separated values over every line of ``key`` (quote/angle aware)."""
        out: list[str] = []
        idx = self._idx
        if idx is None:
            idx = self._index()
        first = idx.get(key)
        if first is None:
            return out
        for h in self.headers[first:]:
            if h[0] == key:
                try:
                    out.extend(split_commas(h[2]))
                except ParseError:
                    raise ParseError(f"Malformed {canonical_name(key)} header") from None
        return out

    def has(self, key: str) -> bool:
        return self.get(key) is not None

    def touch(self, key: str | None = None) -> None:
        """Forget the received header block and cached views (of ``key``, or all).

        Called by every mutating method; call it yourself after editing
        ``headers`` in place.
        """
        self._raw = None
        self._idx = None
        if key is None:
            self._cache.clear()
            return
        for name in _DEPENDENTS.get(key, ()):
            self._cache.pop(name, None)

    def set(self, key: str, value: str) -> None:
        """Replace every line of ``key`` by one line (canonical name), or append."""
        key = header_key(key)
        first = -1
        kept: list[list[str]] = []
        for i, h in enumerate(self.headers):
            if h[0] == key:
                if first < 0:
                    first = i
                    kept.append([key, canonical_name(key), value])
            else:
                kept.append(h)
        if first < 0:
            kept.append([key, canonical_name(key), value])
        self.headers[:] = kept
        self.touch(key)

    def add(self, key: str, value: str) -> None:
        """Append a header line."""
        key = header_key(key)
        self.headers.append([key, canonical_name(key), value])
        self.touch(key)

    def prepend(self, key: str, value: str) -> None:
        """Insert a line before the first line of ``key`` (or at the top)."""
        key = header_key(key)
        pos = 0
        for i, h in enumerate(self.headers):
            if h[0] == key:
                pos = i
                break
        self.headers.insert(pos, [key, canonical_name(key), value])
        self.touch(key)

    def remove(self, key: str) -> None:
        """Drop every line of ``key``."""
        key = header_key(key)
        self.headers[:] = [h for h in self.headers if h[0] != key]
        self.touch(key)

    def remove_first_value(self, key: str) -> str | None:
        """Pop the first comma value of the first line of ``key``.

        The line is dropped when it held only that value; the other values
        keep their bytes. Returns the popped value, or None without a line.
        """
        key = header_key(key)
        for i, h in enumerate(self.headers):
            if h[0] == key:
                try:
                    first, rest = pop_first_value(h[2])
                except ParseError:
                    raise ParseError(f"Malformed {canonical_name(key)} header") from None
                if rest:
                    h[2] = rest
                else:
                    del self.headers[i]
                self.touch(key)
                return first
        return None

    def replace_top_via(self, value: str, parsed: Via | None = None) -> None:
        """Replace the first Via value (e.g. to stamp ``received``/``rport``).

        Other values on the same line keep their bytes.  ``parsed``, when the
        caller already holds the new value parsed (the stamping path edits the
        cached Via in place), becomes the cached ``top_via`` instead of being
        parsed again on the next read.
        """
        for h in self.headers:
            if h[0] == "via":
                try:
                    _, rest = pop_first_value(h[2])
                except ParseError:
                    raise ParseError("Malformed Via header") from None
                h[2] = f"{value}, {rest}" if rest else value
                self.touch("via")
                if parsed is not None:
                    self._cache["top_via"] = parsed
                return
        raise ParseError("Missing Via header")

    # --------------------------------------------------------------- serialising
    def start_line(self) -> str:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """Start line, headers, Content-Length (from ``body``), CRLF, body.

        While no header changed since parsing, the received header block is
        reused byte for byte.
        """
        body = self.body
        raw = self._raw
        if raw is not None and body is self._raw_body and len(self.headers) == self._raw_count:
            return (self.start_line() + "\r\n").encode("utf-8", "surrogateescape") + raw + body
        lines = [self.start_line()]
        has_length = False
        for key, name, value in self.headers:
            if key == "content-length":
                if has_length:
                    continue
                has_length = True
                value = str(len(body))
            lines.append(f"{name}: {value}")
        if not has_length:
            lines.append(f"Content-Length: {len(body)}")
        lines.append("\r\n")
        return "\r\n".join(lines).encode("utf-8", "surrogateescape") + body

    __bytes__ = to_bytes

    # ---------------------------------------------------------------- typed views
    def _required(self, key: str, what: str) -> str:
        value = self.get(key)
        if value is None:
            raise ParseError(f"Missing {what} header")
        return value

    @property
    def call_id(self) -> str:
        value = self._required("call-id", "Call-ID")
        if not value or " " in value or "\t" in value:
            raise ParseError("Malformed Call-ID header")
        return value

    @property
    def cseq(self) -> CSeq:
        cached = self._cache.get("cseq")
        if cached is None:
            cached = parse_cseq(self._required("cseq", "CSeq"))
            self._cache["cseq"] = cached
        return cached

    def _name_addr(self, key: str, what: str) -> NameAddr:
        value = self._required(key, what)
        try:
            return parse_name_addr(value)
        except ParseError:
            raise ParseError(f"Malformed {what} header") from None

    @property
    def from_(self) -> NameAddr:
        cached = self._cache.get("from_")
        if cached is None:
            cached = self._cache["from_"] = self._name_addr("from", "From")
        return cached

    @property
    def to(self) -> NameAddr:
        cached = self._cache.get("to")
        if cached is None:
            cached = self._cache["to"] = self._name_addr("to", "To")
        return cached

    @property
    def from_tag(self) -> str | None:
        return self.from_.params.get("tag")

    @property
    def to_tag(self) -> str | None:
        return self.to.params.get("tag")

    @property
    def vias(self) -> list[Via]:
        cached = self._cache.get("vias")
        if cached is None:
            cached = []
            for h in self.headers:
                if h[0] == "via":
                    try:
                        cached.extend(parse_via(h[2]))
                    except ParseError:
                        raise ParseError("Malformed Via header") from None
            if not cached:
                raise ParseError("Missing Via header")
            self._cache["vias"] = cached
        return cached

    @property
    def top_via(self) -> Via:
        cached = self._cache.get("top_via")
        if cached is None:
            cached = self._cache["top_via"] = parse_top_via(self._required("via", "Via"))
        return cached

    @property
    def max_forwards(self) -> int | None:
        cached = self._cache.get("max_forwards", _MISSING)
        if cached is _MISSING:
            value = self.get("max-forwards")
            cached = None if value is None else _uint(value, 256, "Max-Forwards")
            self._cache["max_forwards"] = cached
        return cast("int | None", cached)

    @property
    def expires(self) -> int | None:
        cached = self._cache.get("expires", _MISSING)
        if cached is _MISSING:
            value = self.get("expires")
            cached = None if value is None else _uint(value, 2**32, "Expires")
            self._cache["expires"] = cached
        return cast("int | None", cached)

    @property
    def content_length(self) -> int | None:
        cached = self._cache.get("content_length", _MISSING)
        if cached is _MISSING:
            value = self.get("content-length")
            cached = None if value is None else _uint(value, 2**32, "Content-Length")
            self._cache["content_length"] = cached
        return cast("int | None", cached)

    @property
    def content_type(self) -> str | None:
        cached = self._cache.get("content_type", _MISSING)
        if cached is _MISSING:
            value = self.get("content-type")
            if value is None:
                cached = None
            else:
                media = value.partition(";")[0]
                kind, slash, sub = media.partition("/")
                kind, sub = kind.strip(WS), sub.strip(WS)
                if not slash or not kind or not sub or kind.strip(TOKEN_CHARS) or sub.strip(TOKEN_CHARS):
                    raise ParseError("Malformed Content-Type header")
                cached = f"{kind}/{sub}".lower()
            self._cache["content_type"] = cached
        return cast("str | None", cached)

    def _name_addr_list(self, key: str, what: str) -> list[NameAddr]:
        try:
            return [parse_name_addr(v) for v in self.values(key)]
        except ParseError:
            raise ParseError(f"Malformed {what} header") from None

    @property
    def contacts(self) -> list[NameAddr] | Literal["*"]:
        cached = self._cache.get("contacts")
        if cached is None:
            values = self.values("contact")
            if "*" in values:
                if len(values) != 1:
                    raise ParseError("Malformed Contact header")
                cached = "*"
            else:
                try:
                    cached = [parse_name_addr(v) for v in values]
                except ParseError:
                    raise ParseError("Malformed Contact header") from None
            self._cache["contacts"] = cached
        return cast('list[NameAddr] | Literal["*"]', cached)

    @property
    def routes(self) -> list[NameAddr]:
        cached = self._cache.get("routes")
        if cached is None:
            cached = self._cache["routes"] = self._name_addr_list("route", "Route")
        return cached

    @property
    def record_routes(self) -> list[NameAddr]:
        cached = self._cache.get("record_routes")
        if cached is None:
            cached = self._cache["record_routes"] = self._name_addr_list("record-route", "Record-Route")
        return cached


class Request(Message):
    """A SIP request. ``method`` is case-sensitive (``RE%47IST%45R`` is not REGISTER)."""

    __slots__ = ("method", "uri", "version")

    method: str
    uri: str
    version: str

    def __init__(
        self,
        method: str,
        uri: str | URI,
        headers: list[list[str]] | None = None,
        body: bytes = b"",
        version: str = "SIP/2.0",
    ) -> None:
        super().__init__(headers, body)
        self.method = method
        self.uri = str(uri)
        self.version = version

    def husk(self) -> Request:
        """What a finished transaction still needs of its request: method, URI and To."""
        husk = Request(self.method, self.uri, [h for h in self.headers if h[0] == "to"][:1])
        husk.version = self.version
        return husk

    @property
    def ruri(self) -> URI:
        """The Request-URI, parsed (cached while ``uri`` is unchanged)."""
        cached = self._cache.get("ruri")
        if cached is None or cached[0] is not self.uri:
            try:
                cached = (self.uri, parse_uri(self.uri))
            except ParseError:
                raise ParseError("Malformed Request-URI") from None
            self._cache["ruri"] = cached
        return cached[1]

    def set_uri(self, uri: str | URI) -> None:
        """Replace the Request-URI (the cached ``ruri`` follows)."""
        self.uri = str(uri)
        self._cache.pop("ruri", None)

    def start_line(self) -> str:
        return f"{self.method} {self.uri} {self.version}"

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri}>"


class Response(Message):
    """A SIP response."""

    __slots__ = ("reason", "status", "version")

    status: int
    reason: str
    version: str

    def __init__(
        self,
        status: int,
        reason: str,
        headers: list[list[str]] | None = None,
        body: bytes = b"",
        version: str = "SIP/2.0",
    ) -> None:
        super().__init__(headers, body)
        self.status = status
        self.reason = reason
        self.version = version

    def start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"
