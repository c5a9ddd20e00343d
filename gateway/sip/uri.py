"""URI and name-addr grammar (RFC 3261 §19.1, §20.10, §25.1).

``sip:``/``sips:`` URIs are split into their parts; any other scheme
(``tel:``, ``urn:``, ``nobodyKnowsThisScheme:``) is kept whole as an
:class:`AbsoluteURI`, because deciding whether to serve it (416) is the
gateway's job, not the parser's (RFC 4475 unkscm, novelsc, unksm2).

The user part stays %-escaped as received (``user``), so a URI re-serialises
byte-for-byte; ``user_unescaped`` gives the decoded form for comparisons.
"""

from __future__ import annotations

from gateway.sip.errors import ParseError
from gateway.sip.headers import (
    ALPHANUM,
    HOSTNAME_CHARS,
    WS,
    parse_params,
    quoted_end,
    split_commas,
    split_hostport,
    unquote,
)

__all__ = [
    "URI",
    "AbsoluteURI",
    "NameAddr",
    "SipURI",
    "parse_name_addr",
    "parse_uri",
    "split_commas",
]

_UNRESERVED = ALPHANUM + "-_.!~*'()"
_SCHEME_CHARS = ALPHANUM + "+-."
#: user = 1*( unreserved / escaped / user-unreserved )
_USER_CHARS = _UNRESERVED + "%&=+$,;?/"
#: password = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," )
_PASSWORD_CHARS = _UNRESERVED + "%&=+$,"
#: paramchar = param-unreserved / unreserved / escaped
_PARAM_CHARS = _UNRESERVED + "%[]/:&+$"
#: headers = hname "=" hvalue *( "&" hname "=" hvalue ), hnv-unreserved
_HEADERS_CHARS = _UNRESERVED + "%[]/?:+$=&"
#: uric (RFC 2396) plus the brackets and fragment of RFC 3986
_URIC_CHARS = _UNRESERVED + "%;/?:@&=+$,[]#"
_HEX = "0123456789abcdefABCDEF"


def _escapes_ok(text: str) -> bool:
    """Every ``%`` is followed by two hex digits."""
    i = text.find("%")
    while i >= 0:
        pair = text[i + 1 : i + 3]
        if len(pair) != 2 or pair.strip(_HEX):
            return False
        i = text.find("%", i + 3)
    return True


def unescape(text: str) -> str:
    """%-decode (UTF-8, invalid sequences kept via surrogateescape)."""
    if "%" not in text:
        return text
    out = bytearray()
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        pair = text[i + 1 : i + 3] if ch == "%" else ""
        if len(pair) == 2 and not pair.strip(_HEX):
            out.append(int(pair, 16))
            i += 3
        else:
            out += ch.encode("utf-8", "surrogateescape")
            i += 1
    return out.decode("utf-8", "surrogateescape")


class SipURI:
    """A ``sip:`` or ``sips:`` URI (scheme and host lower-cased)."""

    __slots__ = ("headers", "host", "params", "password", "port", "scheme", "user")

    scheme: str
    user: str | None
    password: str | None
    host: str
    port: int | None
    params: dict[str, str | None]
    headers: str | None

    def __init__(
        self,
        scheme: str = "sip",
        user: str | None = None,
        host: str = "",
        port: int | None = None,
        params: dict[str, str | None] | None = None,
        headers: str | None = None,
        password: str | None = None,
    ) -> None:
        self.scheme = scheme.lower()
        self.user = user
        self.password = password
        self.host = host.lower()
        self.port = port
        self.params = params if params is not None else {}
        self.headers = headers

    @property
    def user_unescaped(self) -> str | None:
        return None if self.user is None else unescape(self.user)

    @property
    def hostport(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out.append(":")
                out.append(self.password)
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out.append(f":{self.port}")
        for key, value in self.params.items():
            out.append(f";{key}" if value is None else f";{key}={value}")
        if self.headers is not None:
            out.append("?")
            out.append(self.headers)
        return "".join(out)

    def _key(self) -> tuple[object, ...]:
        return (
            self.scheme,
            self.user,
            self.password,
            self.host,
            self.port,
            self.params,
            self.headers,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SipURI):
            return NotImplemented
        return self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"SipURI({str(self)!r})"


class AbsoluteURI:
    """Any non-SIP URI, kept as received; ``scheme`` is lower-cased."""

    __slots__ = ("raw", "scheme")

    scheme: str
    raw: str

    def __init__(self, scheme: str, raw: str) -> None:
        self.scheme = scheme.lower()
        self.raw = raw

    def __str__(self) -> str:
        return self.raw

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AbsoluteURI):
            return NotImplemented
        return self.scheme == other.scheme and self.raw.partition(":")[2] == other.raw.partition(":")[2]

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"AbsoluteURI({self.raw!r})"


URI = SipURI | AbsoluteURI


def parse_uri(text: str) -> URI:
    """Parse a URI; :class:`ParseError` on bad syntax (whitespace, bad host...)."""
    colon = text.find(":")
    if colon <= 0:
        raise ParseError("Malformed URI")
    lscheme = text[:colon].lower()
    rest = text[colon + 1 :]
    if lscheme != "sip" and lscheme != "sips":
        if (
            not lscheme[0].isalpha()
            or not lscheme.isascii()
            or lscheme.strip(_SCHEME_CHARS)
            or not rest
            or rest.strip(_URIC_CHARS)
            or ("%" in rest and not _escapes_ok(rest))
        ):
            raise ParseError("Malformed URI")
        return AbsoluteURI(lscheme, text)

    uri = SipURI.__new__(SipURI)
    uri.scheme = lscheme
    at = rest.find("@")
    if at >= 0:
        userinfo = rest[:at]
        hostpart = rest[at + 1 :]
        c2 = userinfo.find(":")
        if c2 < 0:
            user = userinfo
            uri.password = None
        else:
            user = userinfo[:c2]
            password = userinfo[c2 + 1 :]
            if password.strip(_PASSWORD_CHARS):
                raise ParseError("Malformed URI")
            uri.password = password
        if not user or user.strip(_USER_CHARS) or ("%" in userinfo and not _escapes_ok(userinfo)):
            raise ParseError("Malformed URI")
        uri.user = user
    else:
        uri.user = None
        uri.password = None
        hostpart = rest

    q = hostpart.find("?")
    if q >= 0:
        headers = hostpart[q + 1 :]
        hostpart = hostpart[:q]
        if not headers or headers.strip(_HEADERS_CHARS) or not _escapes_ok(headers):
            raise ParseError("Malformed URI")
        uri.headers = headers
    else:
        uri.headers = None

    semi = hostpart.find(";")
    if semi >= 0:
        hostport = hostpart[:semi]
        params: dict[str, str | None] = {}
        for part in hostpart[semi + 1 :].split(";"):
            name, eq, value = part.partition("=")
            if not name or name.strip(_PARAM_CHARS) or value.strip(_PARAM_CHARS):
                raise ParseError("Malformed URI")
            if eq and not value:
                raise ParseError("Malformed URI")
            params[name.lower()] = value if eq else None
        if "%" in hostpart and not _escapes_ok(hostpart[semi:]):
            raise ParseError("Malformed URI")
        uri.params = params
    else:
        hostport = hostpart
        uri.params = {}
    if hostport[:1] != "[" and ":" not in hostport:
        # plain host, no port: the common case, checked inline
        if not hostport or hostport.strip(HOSTNAME_CHARS):
            raise ParseError("Malformed URI")
        uri.host = hostport.lower()
        uri.port = None
        return uri
    try:
        uri.host, uri.port = split_hostport(hostport)
    except ParseError:
        raise ParseError("Malformed URI") from None
    return uri


class NameAddr:
    """A From/To/Contact/Route value: display name, URI and header parameters."""

    __slots__ = ("display", "params", "raw", "uri")

    display: str | None
    uri: URI
    params: dict[str, str | None]
    raw: str

    def __init__(
        self,
        uri: URI,
        display: str | None = None,
        params: dict[str, str | None] | None = None,
        raw: str = "",
    ) -> None:
        self.uri = uri
        self.display = display
        self.params = params if params is not None else {}
        self.raw = raw or self._serialise()

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def _serialise(self) -> str:
        out: list[str] = []
        if self.display is not None:
            escaped = self.display.replace("\\", "\\\\").replace('"', '\\"')
            out.append(f'"{escaped}" ')
        out.append(f"<{self.uri}>")
        for key, value in self.params.items():
            if value is None:
                out.append(f";{key}")
            elif value and not value.strip(_PARAM_VALUE_CHARS):
                out.append(f";{key}={value}")
            else:
                escaped = value.replace("\\", "\\\\").replace('"', '\\"')
                out.append(f';{key}="{escaped}"')
        return "".join(out)

    def __str__(self) -> str:
        """Serialisation of the current fields (forward ``raw`` instead when unchanged)."""
        return self._serialise()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NameAddr):
            return NotImplemented
        return (self.display, self.uri, self.params) == (other.display, other.uri, other.params)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"NameAddr({self.raw!r})"


# header parameter values that can be written without quotes (token / host)
_PARAM_VALUE_CHARS = ALPHANUM + "-.!%*_+`'~:[]"


def parse_name_addr(text: str) -> NameAddr:
    """Parse ``"Name" <uri>;params``, ``Name <uri>`` or an unbracketed addr-spec.

    For an addr-spec without angle brackets everything after the first ``;``
    is a header parameter (RFC 3261 §20.10), and a ``?`` or ``,`` in it is an
    error (such URIs must be bracketed).
    """
    s = text.strip(WS)
    if not s:
        raise ParseError("Malformed name-addr")
    first = s[0]
    display: str | None
    if first == "<":
        display = None
        rest = s
    elif first == '"':
        end = quoted_end(s, 0)
        if end < 0:
            raise ParseError("Unterminated quoted string")
        display = unquote(s[:end])
        rest = s[end:].lstrip(WS)
        if not rest.startswith("<"):
            raise ParseError("Malformed name-addr")
    else:
        lt = s.find("<")
        prefix = s[:lt] if lt > 0 else ""
        if prefix and not prefix.strip(_DISPLAY_CHARS):
            # display-name = *(token LWS): words of token characters
            display = prefix.strip(WS)
            rest = s[lt:]
        elif lt > 0 and not any(c in prefix for c in ';:,"?'):
            raise ParseError("Malformed display name")
        else:
            # addr-spec: the URI ends at the first ';'
            semi = s.find(";")
            uri_text = s if semi < 0 else s[:semi].rstrip(WS)
            if "?" in uri_text or "," in uri_text or "<" in uri_text or ">" in uri_text:
                raise ParseError("Malformed name-addr")
            na = NameAddr.__new__(NameAddr)
            na.display = None
            na.uri = parse_uri(uri_text)
            na.params = parse_params(s[semi:]) if semi >= 0 else {}
            na.raw = text
            return na
    gt = rest.find(">", 1)
    if gt < 0:
        raise ParseError("Malformed name-addr")
    na = NameAddr.__new__(NameAddr)
    na.display = display
    na.uri = parse_uri(rest[1:gt])
    after = rest[gt + 1 :]
    if after:
        if after[0] != ";":
            after = after.lstrip(WS)
            if after[:1] != ";":
                raise ParseError("Malformed name-addr")
        na.params = parse_params(after)
    else:
        na.params = {}
    na.raw = text
    return na


#: unquoted display name: token characters and the LWS between the words
_DISPLAY_CHARS = ALPHANUM + "-.!%*_+`'~ \t"
