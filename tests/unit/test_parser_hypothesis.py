"""Property tests: generated messages and URIs survive parse → to_bytes → parse.

Messages are generated with random header order (list headers keep their
relative order), random name case, compact forms, folded values, LWS around
separators, and quoted display names with escapes and commas. The typed
fields read back must equal what the generator put in, before and after a
re-serialisation (unchanged and after a mutation that forces a rebuild).
"""

from __future__ import annotations

import contextlib
import string
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.sip import (
    NameAddr,
    ParseError,
    Request,
    SipURI,
    StreamFramer,
    build_response,
    parse_message,
    parse_name_addr,
    parse_uri,
    validate_for_proxy,
)
from gateway.sip.headers import TOKEN_CHARS

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

token = st.text(alphabet=TOKEN_CHARS, min_size=1, max_size=10)
lower_token = st.text(alphabet=string.ascii_lowercase + string.digits + "-.!%*_+`'~", min_size=1, max_size=8)
label = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=8)
hostname = st.lists(label, min_size=1, max_size=3).map(".".join)
ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
ipv6 = st.lists(st.integers(0, 0xFFFF).map(lambda n: format(n, "x")), min_size=8, max_size=8).map(
    lambda parts: "[" + ":".join(parts) + "]"
)
host = st.one_of(hostname, ipv4, ipv6)
port = st.one_of(st.none(), st.integers(1, 65535))
escape = st.integers(0, 255).map(lambda n: f"%{n:02X}")
user_char = st.sampled_from(string.ascii_letters + string.digits + "-_.!~*'()&=+$,;?/")
user = st.lists(st.one_of(user_char, escape), min_size=1, max_size=12).map("".join)
password = st.lists(st.one_of(st.sampled_from(string.ascii_letters + string.digits + "&=+$,"), escape), max_size=6).map(
    "".join
)
param_value = st.text(alphabet=string.ascii_letters + string.digits + "-_.!~*'()[]/:&+$", min_size=1, max_size=8)
uri_pname = st.text(alphabet=string.ascii_lowercase + string.digits + "-_.!~*'()", min_size=1, max_size=8)
uri_params = st.dictionaries(uri_pname, st.one_of(st.none(), param_value), max_size=3)
hname = st.text(alphabet=string.ascii_letters, min_size=1, max_size=6)
uri_headers = st.one_of(
    st.none(),
    st.lists(st.tuples(hname, param_value), min_size=1, max_size=2).map(lambda kv: "&".join(f"{k}={v}" for k, v in kv)),
)


@st.composite
def sip_uris(draw: st.DrawFn, with_headers: bool = True) -> SipURI:
    u = draw(st.one_of(st.none(), user))
    return SipURI(
        draw(st.sampled_from(["sip", "sips"])),
        u,
        draw(host),
        draw(port),
        draw(uri_params),
        draw(uri_headers) if with_headers else None,
        password=draw(st.one_of(st.none(), password)) if u is not None else None,
    )


@given(sip_uris())
@SETTINGS
def test_sip_uri_round_trip(uri: SipURI) -> None:
    text = str(uri)
    parsed = parse_uri(text)
    assert parsed == uri
    assert str(parsed) == text
    # scheme and host are case-insensitive
    upper = parse_uri(text.replace(uri.scheme, uri.scheme.upper(), 1))
    assert upper == uri


@given(st.sampled_from(["tel", "urn", "isbn", "x-foo", "soap.beep"]), st.text(alphabet=string.ascii_letters + string.digits + "-_.!~*'();/?:@&=+$,", min_size=1, max_size=20))
@SETTINGS
def test_absolute_uri_round_trip(scheme: str, rest: str) -> None:
    text = f"{scheme}:{rest}"
    uri = parse_uri(text)
    assert str(uri) == text
    assert uri.scheme == scheme


# ---------------------------------------------------------------- messages
display_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")).filter(lambda c: c not in "\r\n"), max_size=12
)
header_params = st.dictionaries(
    lower_token.filter(lambda k: k != "tag"),
    st.one_of(st.none(), token, st.text(alphabet=string.ascii_letters + " ,;<>:@", min_size=1, max_size=8)),
    max_size=2,
)


@dataclass
class Addr:
    display: str | None
    uri: SipURI
    params: dict[str, str | None]


@st.composite
def addrs(draw: st.DrawFn, tag: bool) -> Addr:
    params = draw(header_params)
    if tag:
        params = {"tag": draw(token), **params}
    return Addr(draw(st.one_of(st.none(), display_text)), draw(sip_uris(with_headers=False)), params)


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_addr(addr: Addr, spaced: bool) -> str:
    semi = " ; " if spaced else ";"
    eq = " = " if spaced else "="
    out = "" if addr.display is None else quote(addr.display) + " "
    out += f"<{addr.uri}>"
    for key, value in addr.params.items():
        if value is None:
            out += f"{semi}{key}"
        elif value.strip(TOKEN_CHARS):
            out += f"{semi}{key}{eq}{quote(value)}"
        else:
            out += f"{semi}{key}{eq}{value}"
    return out


@dataclass
class Hop:
    transport: str
    host: str
    port: int | None
    branch: str


hops = st.builds(Hop, st.sampled_from(["UDP", "TCP", "TLS", "SCTP"]), host, port, token.map(lambda t: "z9hG4bK" + t))


def render_via(hop: Hop, spaced: bool) -> str:
    sent_by = hop.host if hop.port is None else f"{hop.host}:{hop.port}"
    proto = f"SIP / 2.0 / {hop.transport}" if spaced else f"SIP/2.0/{hop.transport}"
    semi = " ; " if spaced else ";"
    return f"{proto} {sent_by}{semi}branch={hop.branch}"


def spell(draw: st.DrawFn, long: str, compact: str | None) -> str:
    choices = [long, long.lower(), long.upper()]
    if compact:
        choices += [compact, compact.upper()]
    name = draw(st.sampled_from(choices))
    if draw(st.booleans()):
        name = "".join(c.upper() if draw(st.booleans()) else c.lower() for c in name)
    return name + draw(st.sampled_from(["", " ", "\t", "  "]))


def fold(draw: st.DrawFn, value: str) -> str:
    """Replace some of the separator spaces " ; " by a line fold."""
    if " ; " in value and draw(st.booleans()):
        return value.replace(" ; ", "\r\n ; ", 1)
    return value


@dataclass
class Generated:
    data: bytes
    method: str
    uri: SipURI
    call_id: str
    seq: int
    max_forwards: int | None
    frm: Addr
    to: Addr
    vias: list[Hop]
    contacts: list[Addr]
    body: bytes


@st.composite
def messages(draw: st.DrawFn) -> Generated:
    spaced = draw(st.booleans())
    method = draw(st.sampled_from(["INVITE", "REGISTER", "OPTIONS", "MESSAGE", "BYE"]))
    ruri = draw(sip_uris(with_headers=False))
    call_id = draw(token) + draw(st.sampled_from(["", "@host.example"]))
    seq = draw(st.integers(0, 2**31 - 1))
    max_forwards = draw(st.one_of(st.none(), st.integers(0, 255)))
    frm = draw(addrs(tag=True))
    to = draw(addrs(tag=draw(st.booleans())))
    vias = draw(st.lists(hops, min_size=1, max_size=4))
    contacts = draw(st.lists(addrs(tag=False), max_size=3))
    body = draw(st.binary(max_size=40))

    groups: dict[str, list[str]] = {}
    # Via: several values per line or one per line
    via_lines: list[str] = []
    per_line = draw(st.integers(1, 3))
    sep = draw(st.sampled_from([",", " , ", ", "]))
    for i in range(0, len(vias), per_line):
        via_lines.append(sep.join(render_via(h, spaced) for h in vias[i : i + per_line]))
    groups["via"] = [f"{spell(draw, 'Via', 'v')}:{draw(st.sampled_from([' ', '', '  ']))}{fold(draw, v)}" for v in via_lines]
    groups["from"] = [f"{spell(draw, 'From', 'f')}: {fold(draw, render_addr(frm, spaced))}"]
    groups["to"] = [f"{spell(draw, 'To', 't')}: {fold(draw, render_addr(to, spaced))}"]
    groups["call-id"] = [f"{spell(draw, 'Call-ID', 'i')}: {call_id}"]
    cseq_gap = draw(st.sampled_from([" ", "  ", "\r\n "]))
    groups["cseq"] = [f"{spell(draw, 'CSeq', None)}: {seq:0{draw(st.integers(1, 10))}d}{cseq_gap}{method}"]
    if max_forwards is not None:
        groups["max-forwards"] = [f"{spell(draw, 'Max-Forwards', None)}: {max_forwards}"]
    if contacts:
        groups["contact"] = [f"{spell(draw, 'Contact', 'm')}: {', '.join(render_addr(c, spaced) for c in contacts)}"]
    groups["x-unknown"] = [f"X-Unknown-{draw(lower_token)}: {draw(st.text(alphabet=string.printable.strip(), max_size=20))}"]
    groups["content-length"] = [f"{spell(draw, 'Content-Length', 'l')}: {len(body)}"]

    order = draw(st.permutations([key for key, lines in groups.items() for _ in lines]))
    taken: dict[str, int] = {}
    lines = [f"{method} {ruri} SIP/2.0"]
    for key in order:
        i = taken.get(key, 0)
        taken[key] = i + 1
        lines.append(groups[key][i])
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body
    return Generated(data, method, ruri, call_id, seq, max_forwards, frm, to, vias, contacts, body)


def check_addr(parsed: NameAddr, expected: Addr) -> None:
    assert parsed.display == expected.display
    assert parsed.uri == expected.uri
    assert parsed.params == expected.params
    assert parse_name_addr(str(parsed)) == parsed


def check(msg: Request, gen: Generated) -> None:
    validate_for_proxy(msg)
    assert msg.method == gen.method
    assert msg.ruri == gen.uri
    assert msg.call_id == gen.call_id
    assert msg.cseq == (gen.seq, gen.method)
    assert msg.max_forwards == gen.max_forwards
    check_addr(msg.from_, gen.frm)
    check_addr(msg.to, gen.to)
    assert msg.from_tag == gen.frm.params["tag"]
    assert msg.to_tag == gen.to.params.get("tag")
    assert [(v.transport, v.host, v.port, v.branch) for v in msg.vias] == [
        (h.transport, h.host.lower(), h.port, h.branch) for h in gen.vias
    ]
    assert msg.top_via.branch == gen.vias[0].branch
    contacts = msg.contacts
    assert contacts != "*"
    assert len(contacts) == len(gen.contacts)
    for parsed, expected in zip(contacts, gen.contacts, strict=True):
        check_addr(parsed, expected)
    assert msg.body == gen.body


@given(messages())
@SETTINGS
def test_message_round_trip(gen: Generated) -> None:
    msg = parse_message(gen.data)
    assert isinstance(msg, Request)
    check(msg, gen)

    out = msg.to_bytes()
    assert out == gen.data  # untouched: the received bytes
    again = parse_message(out)
    assert isinstance(again, Request)
    check(again, gen)

    # force a rebuild of the header block: values survive as strings
    msg.add("x-added", "1")
    rebuilt = parse_message(msg.to_bytes())
    assert isinstance(rebuilt, Request)
    check(rebuilt, gen)
    assert [h for h in rebuilt.headers if h[0] != "x-added"] == [[k, n.rstrip(" \t"), v] for k, n, v in msg.headers if k != "x-added"]


# ---------------------------------------------------------------- robustness
_SEEDS = sorted((Path(__file__).resolve().parent.parent / "data" / "rfc4475").glob("*.dat"))
_SEED_BYTES = [p.read_bytes() for p in _SEEDS]
_SPECIAL = [b"\r\n", b"\r\n ", b":", b";", b",", b"<", b">", b'"', b"\\", b"%", b"@", b" ", b"\x00", b"\xff", b"=", b"/", b"?", b"["]


@st.composite
def mangled(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(_SEED_BYTES)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.sampled_from(_SPECIAL))
        elif op == "delete" and data:
            del data[pos : pos + draw(st.integers(1, 8))]
        elif op == "truncate":
            del data[pos:]
    return bytes(data)


def exercise(data: bytes) -> None:
    """Everything a gateway may touch; only ParseError may come out."""
    try:
        msg = parse_message(data)
    except ParseError as exc:
        assert exc.reason and "\n" not in exc.reason
        if exc.partial is not None:
            build_response(exc.partial, exc.status, exc.reason, to_tag="x").to_bytes()
        return
    msg.to_bytes()
    for name in ("top_via", "vias", "call_id", "cseq", "from_", "to", "from_tag", "to_tag", "max_forwards",
                 "contacts", "routes", "record_routes", "expires", "content_type", "content_length"):  # fmt: skip
        with contextlib.suppress(ParseError):
            getattr(msg, name)
    if isinstance(msg, Request):
        try:
            uri = msg.ruri
            str(uri)
        except ParseError:
            pass
    try:
        validate_for_proxy(msg)
    except ParseError as exc:
        if exc.partial is not None:
            build_response(exc.partial, exc.status, exc.reason, to_tag="x").to_bytes()
    msg.add("x-touched", "1")
    msg.to_bytes()


@given(mangled())
@SETTINGS
def test_mangled_messages_never_crash(data: bytes) -> None:
    exercise(data)


@given(st.binary(max_size=300))
@SETTINGS
def test_random_bytes_never_crash(data: bytes) -> None:
    exercise(data)
    framer = StreamFramer(max_header_bytes=256, max_body=256)
    try:
        for message in framer.feed(data):
            exercise(message)
    except ParseError:
        pass
