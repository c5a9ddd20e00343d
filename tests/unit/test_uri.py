"""URI and name-addr grammar (RFC 3261 §19.1, §20.10, §25.1)."""

from __future__ import annotations

import pytest

from gateway.sip import (
    AbsoluteURI,
    NameAddr,
    ParseError,
    SipURI,
    parse_name_addr,
    parse_uri,
    split_commas,
)


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        ("sip:alice@example.com", ("sip", "alice", None, "example.com", None, {}, None)),
        ("sips:alice@EXAMPLE.com:5061", ("sips", "alice", None, "example.com", 5061, {}, None)),
        ("sip:example.com", ("sip", None, None, "example.com", None, {}, None)),
        ("sip:192.0.2.1:5070;transport=TCP;lr", ("sip", None, None, "192.0.2.1", 5070, {"transport": "TCP", "lr": None}, None)),
        ("sip:[2001:db8::1]:5060", ("sip", None, None, "[2001:db8::1]", 5060, {}, None)),
        ("sip:[2001:DB8::1]", ("sip", None, None, "[2001:db8::1]", None, {}, None)),
        ("sip:alice:secret@example.com", ("sip", "alice", "secret", "example.com", None, {}, None)),
        ("sip:+1-212-555-1234@gw.example;user=phone", ("sip", "+1-212-555-1234", None, "gw.example", None, {"user": "phone"}, None)),
        ("sip:user;par=u%40example.net@example.com", ("sip", "user;par=u%40example.net", None, "example.com", None, {}, None)),
        ("sip:a@b?subject=hi&priority=urgent", ("sip", "a", None, "b", None, {}, "subject=hi&priority=urgent")),
        ("SIP:Alice@Example.COM;Maddr=X", ("sip", "Alice", None, "example.com", None, {"maddr": "X"}, None)),
        ("sip:%00@host5.example.com", ("sip", "%00", None, "host5.example.com", None, {}, None)),
        ("sip:cal%6Cer@h.example;%6C%72;n%61me=v%61lue%25%34%31", ("sip", "cal%6Cer", None, "h.example", None, {"%6c%72": None, "n%61me": "v%61lue%25%34%31"}, None)),
    ],
)
def test_sip_uri_fields(text: str, fields: tuple[object, ...]) -> None:
    uri = parse_uri(text)
    assert isinstance(uri, SipURI)
    assert (uri.scheme, uri.user, uri.password, uri.host, uri.port, uri.params, uri.headers) == fields
    # canonical serialisation re-parses to the same URI
    assert parse_uri(str(uri)) == uri


def test_user_unescaped() -> None:
    uri = parse_uri("sip:sips%3Auser%40example.com@example.net")
    assert isinstance(uri, SipURI)
    assert uri.user == "sips%3Auser%40example.com"
    assert uri.user_unescaped == "sips:user@example.com"
    assert parse_uri("sip:%E2%82%AC@x").user_unescaped == "\u20ac"  # type: ignore[union-attr]
    assert parse_uri("sip:x").user_unescaped is None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "text",
    ["tel:+1-201-555-0123", "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6", "isbn:2983792873",
     "http://www.example.com", "name:John_Smith", "soap.beep://192.0.2.103:3002",
     "nobodyKnowsThisScheme:totallyopaquecontent"],
)  # fmt: skip
def test_absolute_uris(text: str) -> None:
    uri = parse_uri(text)
    assert isinstance(uri, AbsoluteURI)
    assert uri.scheme == text.split(":", 1)[0].lower()
    assert str(uri) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sip",
        ":alice@example.com",
        "sip:alice@example.com; lr",
        "sip:alice@ example.com",
        " sip:alice@example.com",
        "sip:alice@example.com ",
        "sip:alice@",
        "sip:@example.com",
        "sip:alice@exa<mple.com",
        "sip:alice@example.com:99999",
        "sip:alice@example.com:50x",
        "sip:alice@[2001:db8::1",
        "sip:alice@example.com;;lr",
        "sip:alice@example.com;lr=",
        "sip:alice@example.com?",
        "sip:al%zzice@example.com",
        "sip:alice@example.com?a=%3",
        "1sip:alice@example.com",
        "tel:",
        "tel:+1 212",
        'urn:"quoted"',
    ],
)
def test_bad_uris(text: str) -> None:
    with pytest.raises(ParseError):
        parse_uri(text)


def test_uri_equality_and_construction() -> None:
    built = SipURI("SIP", "bob", "Example.Test", 5060, {"transport": "udp"})
    assert str(built) == "sip:bob@example.test:5060;transport=udp"
    assert parse_uri(str(built)) == built
    assert built != parse_uri("sip:bob@example.test")
    assert parse_uri("TEL:+1") == parse_uri("tel:+1")
    assert built.hostport == "example.test:5060"


# ------------------------------------------------------------------ name-addr
@pytest.mark.parametrize(
    ("text", "display", "uri", "params"),
    [
        ("<sip:a@b>", None, "sip:a@b", {}),
        ('"Alice" <sip:a@b>;tag=1', "Alice", "sip:a@b", {"tag": "1"}),
        ('"A \\"quoted\\" \\\\ name" <sip:a@b>', 'A "quoted" \\ name', "sip:a@b", {}),
        ('"a, b; c <d>" <sip:a@b>', "a, b; c <d>", "sip:a@b", {}),
        ("Alice Smith <sip:a@b>", "Alice Smith", "sip:a@b", {}),
        ("caller<sip:caller@example.com>;tag=323", "caller", "sip:caller@example.com", {"tag": "323"}),
        ("A. Bell <sip:a.g.bell@example.com>;tag=qweoiqpe", "A. Bell", "sip:a.g.bell@example.com", {"tag": "qweoiqpe"}),
        ("sip:a@b;tag=1", None, "sip:a@b", {"tag": "1"}),
        ("sip:+19725552222@gw1.example.net;unknownparam", None, "sip:+19725552222@gw1.example.net", {"unknownparam": None}),
        ("<sip:a@b;lr>;expires=0", None, "sip:a@b;lr", {"expires": "0"}),
        ("  <sip:a@b>  ;  q = 0.5 ; x", None, "sip:a@b", {"q": "0.5", "x": None}),
        ('<sip:a@b>;+sip.instance="<urn:uuid:1>";reg-id=1', None, "sip:a@b", {"+sip.instance": "<urn:uuid:1>", "reg-id": "1"}),
        ("isbn:2983792873", None, "isbn:2983792873", {}),
        ("<http://www.example.com>;tag=3234233", None, "http://www.example.com", {"tag": "3234233"}),
        ('""<sip:a@b>', "", "sip:a@b", {}),
        ("<sip:a@b>;tag", None, "sip:a@b", {"tag": None}),  # a flag: valid syntax
    ],
)
def test_name_addr(text: str, display: str | None, uri: str, params: dict[str, str | None]) -> None:
    na = parse_name_addr(text)
    assert na.display == display
    assert str(na.uri) == uri
    assert na.params == params
    assert na.raw == text
    assert na.tag == params.get("tag")
    # serialisation of the fields re-parses to the same value
    assert parse_name_addr(str(na)) == na


@pytest.mark.parametrize(
    "text",
    [
        "",
        '"unterminated <sip:a@b>',
        '"name" sip:a@b',
        "< sip:t.watson@example.org >",
        '"Watson, Thomas" < sip:t.watson@example.org >',
        "Watson, Thomas <sip:t.watson@example.org>",
        "Bell@home <sip:a@b>",
        "<sip:a@b",
        "<sip:a@b> junk",
        "<sip:a@b>;;",
        "<sip:a@b>;;;;",
        "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
        "<sip:a@b>;=1",
        '<sip:a@b>;x="unterminated',
        "<sip:a@b>;x=a b",
    ],
)
def test_bad_name_addr(text: str) -> None:
    with pytest.raises(ParseError):
        parse_name_addr(text)


def test_name_addr_construction() -> None:
    na = NameAddr(SipURI("sip", "gw", "example.test", params={"lr": None}), params={"x": "a b"})
    assert str(na) == '<sip:gw@example.test;lr>;x="a b"'
    assert na.raw == str(na)
    quoted = NameAddr(SipURI("sip", "a", "b"), display='Say "hi"')
    assert str(quoted) == '"Say \\"hi\\"" <sip:a@b>'
    assert parse_name_addr(str(quoted)).display == 'Say "hi"'


# ------------------------------------------------------------------ split_commas
@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("a, b ,c", ["a", "b", "c"]),
        ('"x, y" <sip:a@b>, <sip:c@d;p="1,2">', ['"x, y" <sip:a@b>', '<sip:c@d;p="1,2">']),
        ('<sip:a@b?h=1,2>, "q \\" ,"', ['<sip:a@b?h=1,2>', '"q \\" ,"']),
        ("", []),
        ("   ", []),
        ("single", ["single"]),
        ("a,,b", ["a", "", "b"]),
        (";;,,;;,;", [";;", "", ";;", ";"]),
    ],
)
def test_split_commas(text: str, parts: list[str]) -> None:
    assert split_commas(text) == parts


def test_split_commas_unterminated_quote() -> None:
    with pytest.raises(ParseError):
        split_commas('"a, b')
