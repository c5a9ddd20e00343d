"""RFC 4475 §3: every torture message gets the parser-level verdict the RFC expects.

The shipped subset is listed in ``tests/data/rfc4475/INDEX.tsv`` (the kit's,
untouched); the messages recovered from RFC 4475's archive are listed in
``INDEX-extra.tsv``. "valid" means the gateway's parser stage accepts the
message: :func:`parse_message` and then :func:`validate_for_proxy`, which
reads every typed field the proxy and registrar use. What the gateway
answers afterwards (416, 501, 505, 483...) is decided above the parser and
tested with the running gateway.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from gateway.sip import (
    AbsoluteURI,
    ParseError,
    Request,
    Response,
    SipURI,
    build_response,
    parse_message,
    validate_for_proxy,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "rfc4475"


def _rows(index: str) -> list[tuple[str, str, str]]:
    path = DATA / index
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        name, section, expected, _note = line.split("\t", 3)
        rows.append((name, section, expected))
    return rows


ROWS = _rows("INDEX.tsv") + _rows("INDEX-extra.tsv")


def gateway_verdict(data: bytes) -> str:
    """What the gateway's parser stage decides: 'valid' or 'invalid'."""
    try:
        msg = parse_message(data)
        validate_for_proxy(msg)
    except ParseError:
        return "invalid"
    return "valid"


def load(name: str) -> bytes:
    return (DATA / f"{name}.dat").read_bytes()


def parsed(name: str) -> Request | Response:
    msg = parse_message(load(name))
    validate_for_proxy(msg)
    return msg


def test_index_is_complete() -> None:
    names = [r[0] for r in ROWS]
    assert len(names) == len(set(names))
    # the kit's 25 are always there; with the recovered ones the RFC's 49
    assert len(_rows("INDEX.tsv")) == 25
    if _rows("INDEX-extra.tsv"):
        assert len(names) == 49
        assert sum(1 for r in ROWS if r[2] == "valid") == 27


@pytest.mark.parametrize("sums", ["SHA256SUMS", "SHA256SUMS-extra"])
def test_files_are_pristine(sums: str) -> None:
    path = DATA / sums
    if not path.exists():
        pytest.skip(f"{sums} not present")
    lines = path.read_text().splitlines()
    assert lines
    for line in lines:
        digest, name = line.split(maxsplit=1)
        name = name.lstrip("*")
        assert hashlib.sha256((DATA / name).read_bytes()).hexdigest() == digest, name


@pytest.mark.parametrize(("name", "section", "expected"), ROWS, ids=[r[0] for r in ROWS])
def test_verdict(name: str, section: str, expected: str) -> None:
    assert gateway_verdict(load(name)) == expected, f"RFC 4475 {section} {name}"


@pytest.mark.parametrize(
    "name", [r[0] for r in ROWS if r[2] == "invalid"], ids=[r[0] for r in ROWS if r[2] == "invalid"]
)
def test_invalid_requests_can_be_answered(name: str) -> None:
    """An invalid request with readable Via/From/To/Call-ID/CSeq can get its 400."""
    data = load(name)
    with pytest.raises(ParseError) as info:
        validate_for_proxy(parse_message(data))
    exc = info.value
    assert exc.status in (400, 505)
    assert exc.reason and "\r" not in exc.reason and "\n" not in exc.reason
    if exc.partial is not None:
        assert isinstance(exc.partial, Request)
        resp = build_response(exc.partial, exc.status, exc.reason, to_tag="gw1")
        out = resp.to_bytes()
        # the faulty headers are copied as received, so the answer need not re-parse
        assert out.startswith(f"SIP/2.0 {exc.status} {exc.reason}\r\n".encode())
        call_id = exc.partial.get("call-id")
        assert call_id is not None and call_id.encode() in out
        assert out.endswith(b"Content-Length: 0\r\n\r\n")


@pytest.mark.parametrize("name", [r[0] for r in ROWS if r[2] == "valid"], ids=[r[0] for r in ROWS if r[2] == "valid"])
def test_valid_messages_reserialise_exactly(name: str) -> None:
    """An untouched message goes out as it came in (up to the framed body)."""
    data = load(name)
    msg = parse_message(data)
    out = msg.to_bytes()
    if msg.get("content-length") is not None:
        assert data.startswith(out)
    again = parse_message(out)
    # a message without Content-Length gets one on the way out; nothing else changes
    assert [h for h in again.headers if h[0] != "content-length"] == [
        h for h in msg.headers if h[0] != "content-length"
    ]
    assert again.content_length == len(msg.body)
    assert again.body == msg.body


# ---------------------------------------------------------------- content checks
def test_wsinv() -> None:
    msg = parsed("wsinv")
    assert isinstance(msg, Request)
    assert msg.method == "INVITE"
    assert msg.to_tag == "1918181833n"
    assert msg.from_tag == "98asjd8"
    assert msg.from_.display == 'J Rosenberg \\"'
    assert msg.max_forwards == 68
    assert msg.cseq == (9, "INVITE")
    assert [(v.transport, v.host, v.branch) for v in msg.vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert msg.get("subject") == ""
    assert msg.get("newfangledheader") == "newfangled value continued newfangled value"
    assert msg.get("unknownheaderwithunusualvalue") == ";;,,;;,;"
    contacts = msg.contacts
    assert contacts != "*"
    assert len(contacts) == 1
    assert contacts[0].display == 'Quoted string ""'
    assert contacts[0].params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert isinstance(msg.ruri, SipURI)
    assert msg.ruri.params == {"unknownparam": None}
    assert msg.routes[0].uri == SipURI(
        "sip", None, "services.example.com", params={"lr": None, "unknownwith": "value", "unknown-no-value": None}
    )
    assert len(msg.body) == 150


def test_esc01_request_uri_user_unescapes() -> None:
    msg = parsed("esc01")
    assert isinstance(msg, Request)
    ruri = msg.ruri
    assert isinstance(ruri, SipURI)
    assert ruri.user == "sips%3Auser%40example.com"
    assert ruri.user_unescaped == "sips:user@example.com"
    assert ruri.host == "example.net"
    assert msg.content_type == "application/sdp"


def test_esc02_method_is_literal() -> None:
    msg = parsed("esc02")
    assert isinstance(msg, Request)
    assert msg.method == "RE%47IST%45R"
    assert msg.method != "REGISTER"
    contacts = msg.contacts
    assert contacts != "*"
    assert [str(c.uri) for c in contacts] == ["sip:alias1@host1.example.com", "sip:alias3@host3.example.com"]
    assert msg.get("c%6fntact") == "<sip:alias2@host2.example.com>"


def test_longreq_keeps_everything() -> None:
    data = load("longreq")
    msg = parsed("longreq")
    assert len(msg.vias) == 34
    contacts = msg.contacts
    assert contacts != "*"
    assert contacts[0].uri.host == "host5.example.net"  # type: ignore[union-attr]
    assert msg.to.display is not None and msg.to.display.endswith(" proportion")
    assert msg.from_tag is not None and len(msg.from_tag) > 100
    assert len(msg.body) == 150
    for _key, _name, value in msg.headers:
        # no value is truncated: each is found in the datagram as it was sent
        assert value.encode("utf-8", "surrogateescape") in data


def test_semiuri_semicolon_belongs_to_user() -> None:
    msg = parsed("semiuri")
    assert isinstance(msg, Request)
    ruri = msg.ruri
    assert isinstance(ruri, SipURI)
    assert ruri.user == "user;par=u%40example.net"
    assert ruri.host == "example.com"
    assert ruri.params == {}


def test_mpart01_body_framed_by_content_length() -> None:
    data = load("mpart01")
    msg = parsed("mpart01")
    assert msg.content_length == len(msg.body)
    assert data.endswith(msg.body)
    assert msg.content_type == "multipart/mixed"


def test_noreason() -> None:
    msg = parsed("noreason")
    assert isinstance(msg, Response)
    assert msg.status == 100
    assert msg.reason == ""
    assert msg.to_bytes().startswith(b"SIP/2.0 100 \r\n")


def test_unkscm_is_an_absolute_uri() -> None:
    msg = parsed("unkscm")
    assert isinstance(msg, Request)
    assert isinstance(msg.ruri, AbsoluteURI)
    assert msg.ruri.scheme == "nobodyknowsthisscheme"


def test_unksm2_foreign_schemes_in_headers() -> None:
    msg = parsed("unksm2")
    assert isinstance(msg.to.uri, AbsoluteURI) and msg.to.uri.scheme == "isbn"
    assert isinstance(msg.from_.uri, AbsoluteURI) and msg.from_.uri.scheme == "http"
    contacts = msg.contacts
    assert contacts != "*"
    assert isinstance(contacts[0].uri, AbsoluteURI) and contacts[0].uri.scheme == "name"


def test_cparam01_param_belongs_to_contact() -> None:
    contacts = parsed("cparam01").contacts
    assert contacts != "*"
    assert isinstance(contacts[0].uri, SipURI)
    assert contacts[0].uri.params == {}
    assert "unknownparam" in contacts[0].params


def test_regescrt_keeps_escaped_header() -> None:
    contacts = parsed("regescrt").contacts
    assert contacts != "*"
    uri = contacts[0].uri
    assert isinstance(uri, SipURI)
    assert uri.headers == "Route=%3Csip:sip.example.com%3E"
    assert str(uri) == "sip:user@example.com?Route=%3Csip:sip.example.com%3E"


def test_inv2543_old_syntax() -> None:
    msg = parsed("inv2543")
    assert msg.top_via.branch is None
    assert msg.from_tag is None
    assert msg.max_forwards is None


def test_bcast_second_via_parses() -> None:
    msg = parsed("bcast")
    assert isinstance(msg, Response)
    assert msg.vias[1].host == "255.255.255.255"


def test_reasons_name_the_fault() -> None:
    def reason(name: str) -> str:
        with pytest.raises(ParseError) as info:
            validate_for_proxy(parse_message(load(name)))
        return info.value.reason

    assert reason("quotbal") == "Malformed To header"
    assert reason("badaspec") == "Malformed To header"
    assert reason("clerr") == "Content-Length exceeds body"
    assert reason("mismatch02") == "CSeq method mismatch"
    assert reason("lwsruri") == "Malformed Request-Line"
    with pytest.raises(ParseError) as info:
        parse_message(load("badvers"))
    assert info.value.status == 505


# ---------------------------------------------------------------- recovered messages
def test_baddn_both_forms_rejected() -> None:
    """The archive form lacks the final CRLF; with it, the display names are the fault."""
    archive = load("baddn")
    assert not archive.endswith(b"\r\n\r\n")
    assert gateway_verdict(archive) == "invalid"
    fixed = archive + b"\r\n"
    msg = parse_message(fixed)  # framing is fine now
    with pytest.raises(ParseError, match=r"Malformed (From|To) header") as info:
        validate_for_proxy(msg)
    assert isinstance(info.value.partial, Request)


def test_intmeth() -> None:
    msg = parsed("intmeth")
    assert isinstance(msg, Request)
    method = "!interesting-Method0123456789_*+`.%indeed'~"
    assert msg.method == method
    assert msg.cseq == (139122385, method)
    ruri = msg.ruri
    assert isinstance(ruri, SipURI)
    assert ruri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert ruri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert msg.to.display == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert msg.from_.display == "token1~` token2'+_ token3*%!.-"
    assert msg.from_.params["fromparam''~+*_!.-%"] == "\u0440\u0430\u0431\u043e\u0442\u0430\u044e\u0449\u0438\u0439"
    assert msg.from_tag == "_token~1'+`*%!-."
    assert msg.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert msg.top_via.branch == "z9hG4bK-.!%66*_+`'~"
    assert msg.max_forwards == 255
    assert msg.get("extensionheader-!.%*+_`'~") == "\ufeff\u5927\u505c\u96fb"
    assert msg.to_bytes() == load("intmeth")


def test_escnull_keeps_escapes() -> None:
    msg = parsed("escnull")
    contacts = msg.contacts
    assert contacts != "*"
    users = [c.uri.user for c in contacts]  # type: ignore[union-attr]
    assert users == ["%00", "%00%00"]
    assert [c.uri.user_unescaped for c in contacts] == ["\x00", "\x00\x00"]  # type: ignore[union-attr]
    assert b"\x00" not in msg.to_bytes()


def test_lwsdisp() -> None:
    assert parsed("lwsdisp").from_.display == "caller"


def test_dblreq_trailing_request_ignored() -> None:
    msg = parsed("dblreq")
    assert isinstance(msg, Request)
    assert msg.method == "REGISTER"
    assert msg.body == b""
    assert b"INVITE" not in msg.to_bytes()


def test_transports() -> None:
    assert [v.transport for v in parsed("transports").vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]


def test_unreason() -> None:
    msg = parsed("unreason")
    assert isinstance(msg, Response)
    assert msg.status == 200
    assert msg.reason == "= 2**3 * 5**2 \u043d\u043e \u0441\u0442\u043e \u0434\u0435\u0432\u044f\u043d\u043e\u0441\u0442\u043e \u0434\u0435\u0432\u044f\u0442\u044c - \u043f\u0440\u043e\u0441\u0442\u043e\u0435"
    assert msg.to_bytes() == load("unreason")


def test_novelsc() -> None:
    msg = parsed("novelsc")
    assert isinstance(msg, Request)
    assert isinstance(msg.ruri, AbsoluteURI)
    assert msg.ruri.scheme == "soap.beep"


def test_semantic_messages_parse() -> None:
    assert parsed("bext01").values("proxy-require") == ["noProxiesSupportThis", "norDoAnyProxiesSupportThis"]
    assert parsed("regaut01").get("authorization") == "NoOneKnowsThisScheme opaque-data=here"
    assert parsed("zeromf").max_forwards == 0
    contacts = parsed("cparam02").contacts
    assert contacts != "*"
    assert contacts[0].uri.params == {"unknownparam": None}  # type: ignore[union-attr]
    assert contacts[0].params == {}
    assert parsed("sdp01").get("accept") == "text/nobodyKnowsThis"


def test_recovered_reasons() -> None:
    def reason(name: str) -> str:
        with pytest.raises(ParseError) as info:
            validate_for_proxy(parse_message(load(name)))
        return info.value.reason

    assert reason("badinv01") == "Malformed Via header"
    assert reason("ncl") == "Malformed Content-Length header"
    assert reason("ltgtruri") == "Malformed Request-URI"
    assert reason("lwsstart") == "Malformed Request-Line"
    assert reason("escruri") == "Malformed Request-URI"
    assert reason("regbadct") == "Malformed Contact header"
    assert reason("mismatch01") == "CSeq method mismatch"
    assert reason("insuf") == "Missing From header"
    assert reason("mcl01") == "Duplicate Content-Length header"
    assert reason("bigcode") == "Malformed Status-Line"
    assert reason("scalarlg") == "Malformed CSeq header"


def test_badinv01_400_can_be_routed() -> None:
    """Its top Via has ;;,;,, after the sent-by: the 400 still needs somewhere to go."""
    with pytest.raises(ParseError, match="Malformed Via header") as info:
        validate_for_proxy(parse_message(load("badinv01")))
    partial = info.value.partial
    assert isinstance(partial, Request)
    assert partial.top_via.sent_by == ("192.0.2.15", 5060)
    assert partial.top_via.params == {}
    out = build_response(partial, 400, info.value.reason, to_tag="gw").to_bytes()
    assert b"\r\nVia: SIP/2.0/UDP 192.0.2.15;;,;,,\r\n" in out  # copied as received


def test_insuf_is_dropped() -> None:
    """No From, To or Call-ID: no 400 can be built that the sender could match."""
    with pytest.raises(ParseError, match="Missing From header") as info:
        parse_message(load("insuf"))
    assert info.value.partial is None
