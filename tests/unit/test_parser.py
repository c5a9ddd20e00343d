"""Parser, message model and serializer (RFC 3261 §7, §18.3, §25)."""

from __future__ import annotations

import pytest

from gateway.sip import (
    MAX_BODY,
    MAX_MESSAGE_SIZE,
    ParseError,
    Request,
    Response,
    SipURI,
    StreamFramer,
    build_response,
    parse_message,
    validate_for_proxy,
)


def request(*header_lines: str, start: str = "OPTIONS sip:bob@example.test SIP/2.0", body: bytes = b"") -> bytes:
    """A request with the usual mandatory headers unless the test gives its own."""
    lines = list(header_lines)
    names = {line.split(":", 1)[0].strip().lower() for line in lines}
    defaults = {
        "via": "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds",
        "from": "From: <sip:alice@example.test>;tag=1928301774",
        "to": "To: <sip:bob@example.test>",
        "call-id": "Call-ID: a84b4c76e66710@pc33.example.test",
        "cseq": f"CSeq: 314159 {start.split(' ', 1)[0]}",
    }
    short = {"via": "v", "from": "f", "to": "t", "call-id": "i", "cseq": "cseq"}
    for key, line in defaults.items():
        if key not in names and short[key] not in names:
            lines.append(line)
    if not any(n in ("content-length", "l") for n in names):
        lines.append(f"Content-Length: {len(body)}")
    return (start + "\r\n" + "\r\n".join(lines) + "\r\n\r\n").encode() + body


def parse_req(data: bytes) -> Request:
    msg = parse_message(data)
    assert isinstance(msg, Request)
    return msg


# ------------------------------------------------------------------ header lines
def test_folded_header_is_one_value() -> None:
    msg = parse_req(request("Subject: hello\r\n  world", "X-Long: a\r\n\tb\r\n c"))
    assert msg.get("subject") == "hello world"
    assert msg.get("x-long") == "a b c"


def test_whitespace_before_colon() -> None:
    msg = parse_req(request("Subject   : x", "Max-Forwards\t: 5"))
    assert msg.get("subject") == "x"
    assert msg.headers[0][1] == "Subject"
    assert msg.max_forwards == 5


def test_compact_forms_expand() -> None:
    data = (
        b"INVITE sip:bob@example.test SIP/2.0\r\n"
        b"v: SIP/2.0/UDP host.example.test;branch=z9hG4bKx\r\n"
        b"f: <sip:a@example.test>;tag=1\r\n"
        b"t: <sip:b@example.test>\r\n"
        b"i: cid@host\r\n"
        b"CSeq: 1 INVITE\r\n"
        b"m: <sip:a@192.0.2.1>\r\n"
        b"c: application/sdp\r\n"
        b"k: 100rel\r\n"
        b"s: hi\r\n"
        b"o: presence\r\n"
        b"r: <sip:c@example.test>\r\n"
        b"b: <sip:d@example.test>\r\n"
        b"u: talk\r\n"
        b"x: 1800\r\n"
        b"a: *;audio\r\n"
        b"y: sig\r\n"
        b"j: *;video\r\n"
        b"d: proxy\r\n"
        b"e: gzip\r\n"
        b"l: 4\r\n\r\nv=0\r\n"
    )
    msg = parse_req(data)
    assert [h[0] for h in msg.headers] == [
        "via", "from", "to", "call-id", "cseq", "contact", "content-type", "supported", "subject",
        "event", "refer-to", "referred-by", "allow-events", "session-expires", "accept-contact",
        "identity", "reject-contact", "request-disposition", "content-encoding", "content-length",
    ]  # fmt: skip
    assert msg.headers[0][1] == "v"
    assert msg.call_id == "cid@host"
    assert msg.content_type == "application/sdp"
    assert msg.body == b"v=0\r"


def test_header_names_case_insensitive() -> None:
    msg = parse_req(request("cALL-iD: x@y", "VIA: SIP/2.0/UDP h;branch=z9hG4bK1", "mAX-fORWARDS: 1"))
    assert msg.call_id == "x@y"
    assert msg.top_via.host == "h"
    assert msg.max_forwards == 1


def test_unknown_header_kept_verbatim() -> None:
    odd = 'X-Odd: ;;,,;;,; "unbalanced <things> \\" here'
    data = request(odd, "X-Utf8: \u5927\u505c\u96fb")
    msg = parse_req(data)
    assert msg.get("x-odd") == odd.split(": ", 1)[1]
    assert msg.get("x-utf8") == "\u5927\u505c\u96fb"
    assert msg.to_bytes() == data
    msg.set("max-forwards", "69")  # force a rebuild
    assert odd.encode() in msg.to_bytes()


def test_invalid_utf8_round_trips() -> None:
    data = request("X-Bin: \xff\xfe".encode("latin-1").decode("latin-1")).replace(b"\xc3\xbf\xc3\xbe", b"\xff\xfe")
    msg = parse_req(data)
    msg.add("x-added", "1")
    assert b"X-Bin: \xff\xfe\r\n" in msg.to_bytes()


def test_comma_separated_values() -> None:
    msg = parse_req(
        request(
            "Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK1 , SIP/2.0/UDP b.example.com;branch=z9hG4bK2",
            "Allow: INVITE,ACK, BYE",
            "Allow: CANCEL",
        )
    )
    assert [v.host for v in msg.vias] == ["a.example.com", "b.example.com"]
    assert msg.values("allow") == ["INVITE", "ACK", "BYE", "CANCEL"]
    assert msg.get_all("allow") == ["INVITE,ACK, BYE", "CANCEL"]


def test_quoted_commas_in_contact_list() -> None:
    msg = parse_req(request('Contact: "a, b" <sip:a@b.example>, "c \\"q\\" d" <sip:c@d.example>;q=0.5'))
    contacts = msg.contacts
    assert contacts != "*"
    assert [c.display for c in contacts] == ["a, b", 'c "q" d']
    assert [str(c.uri) for c in contacts] == ["sip:a@b.example", "sip:c@d.example"]
    assert contacts[1].params == {"q": "0.5"}


def test_contact_star() -> None:
    msg = parse_req(request("Contact: *", "Expires: 0", start="REGISTER sip:example.test SIP/2.0"))
    assert msg.contacts == "*"
    assert msg.expires == 0
    bad = parse_req(request("Contact: *, <sip:a@b>", start="REGISTER sip:example.test SIP/2.0"))
    with pytest.raises(ParseError, match="Contact"):
        bad.contacts  # noqa: B018


def test_contacts_absent_is_empty() -> None:
    assert parse_req(request()).contacts == []


def test_sip_instance_param_with_angle_brackets() -> None:
    value = (
        '"alice" <sip:alice@127.0.0.1:25092;transport=udp>;'
        '+sip.instance="<urn:uuid:decfbf29-9737-007c-bfe9-a2dc652ccd2b>";expires=0'
    )
    msg = parse_req(request(f"Contact: {value}", start="REGISTER sip:127.0.0.1 SIP/2.0"))
    contacts = msg.contacts
    assert contacts != "*"
    (c,) = contacts
    assert c.display == "alice"
    assert c.params["+sip.instance"] == "<urn:uuid:decfbf29-9737-007c-bfe9-a2dc652ccd2b>"
    assert c.params["expires"] == "0"
    assert c.raw == value
    assert isinstance(c.uri, SipURI) and c.uri.params == {"transport": "udp"}


def test_abnf_literals_case_insensitive() -> None:
    msg = parse_req(request("Via: sip/2.0/udp a.example.com;branch=z9hG4bK1", start="OPTIONS SIP:bob@example.test sip/2.0"))
    assert msg.top_via.transport == "UDP"
    ruri = msg.ruri
    assert isinstance(ruri, SipURI) and ruri.scheme == "sip"


# ------------------------------------------------------------------ start line
@pytest.mark.parametrize(
    "start",
    [
        "INVITE  sip:bob@example.test SIP/2.0",
        "INVITE sip:bob@example.test SIP/2.0 ",
        "INVITE sip:bob@example.test",
        "INVITE <sip:bob@example.test> SIP/2.0",
        "INV\x01TE sip:bob@example.test SIP/2.0",
        "INVITE sip:bob@example.test HTTP/1.1",
    ],
)
def test_bad_request_line(start: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_message(request(start=start))
    assert info.value.status == 400


def test_other_sip_version_is_505() -> None:
    with pytest.raises(ParseError) as info:
        parse_message(request(start="OPTIONS sip:bob@example.test SIP/3.0"))
    assert info.value.status == 505
    assert isinstance(info.value.partial, Request)


@pytest.mark.parametrize("status", ["099", "700", "1000", "4294967301", "20O"])
def test_bad_status_code(status: str) -> None:
    data = f"SIP/2.0 {status} Whatever\r\n".encode() + request().split(b"\r\n", 1)[1]
    with pytest.raises(ParseError):
        parse_message(data)


def test_response_parses() -> None:
    data = b"SIP/2.0 180 Ringing \xd0\xb7\xd0\xb2\xd0\xbe\xd0\xbd\xd0\xbe\xd0\xba\r\n" + request().split(b"\r\n", 1)[1]
    msg = parse_message(data)
    assert isinstance(msg, Response)
    assert msg.status == 180
    assert msg.reason == "Ringing \u0437\u0432\u043e\u043d\u043e\u043a"
    assert msg.to_bytes() == data


def test_leading_crlf_ignored() -> None:
    msg = parse_req(b"\r\n\r\n" + request())
    assert msg.method == "OPTIONS"


@pytest.mark.parametrize("data", [b"", b"\r\n", b"\r\n\r\n", b"garbage", b"\x00\x01\x02\r\n\r\n", b"SIP/2.0\r\n\r\n"])
def test_garbage_is_a_clean_error(data: bytes) -> None:
    with pytest.raises(ParseError):
        parse_message(data)


def test_bare_lf_message_accepted() -> None:
    msg = parse_req(request().replace(b"\r\n", b"\n"))
    assert msg.call_id == "a84b4c76e66710@pc33.example.test"
    assert b"\r\n" in msg.to_bytes()


def test_missing_empty_line() -> None:
    data = request()[:-2]
    with pytest.raises(ParseError, match="Missing empty line") as info:
        parse_message(data)
    assert isinstance(info.value.partial, Request)


# ------------------------------------------------------------------ required / single headers
@pytest.mark.parametrize(("drop", "what"), [("via", "Via"), ("from", "From"), ("to", "To"), ("call-id", "Call-ID"), ("cseq", "CSeq")])
def test_required_headers(drop: str, what: str) -> None:
    lines = request().split(b"\r\n")
    data = b"\r\n".join(line for line in lines if not line.lower().startswith(drop.encode() + b":"))
    with pytest.raises(ParseError, match=f"Missing {what} header"):
        parse_message(data)


@pytest.mark.parametrize(
    "dup",
    [
        "To: <sip:x@example.test>\r\nt: <sip:y@example.test>",
        "From: <sip:x@example.test>;tag=2\r\nFrom: <sip:x@example.test>;tag=2",
        "Call-ID: other\r\ni: other",
        "CSeq: 314159 OPTIONS\r\nCSeq: 314160 OPTIONS",
        "Max-Forwards: 70\r\nMax-Forwards: 70",
        "Content-Type: text/plain\r\nc: text/plain",
        "Expires: 1\r\nExpires: 2",
    ],
)
def test_single_valued_headers_unique(dup: str) -> None:
    with pytest.raises(ParseError, match="Duplicate") as info:
        parse_message(request(dup))
    assert isinstance(info.value.partial, Request)


def test_cseq_method_must_match() -> None:
    with pytest.raises(ParseError, match="CSeq method mismatch"):
        parse_message(request("CSeq: 1 INVITE"))
    assert parse_req(request("CSeq: 1 ACK", start="ACK sip:b@example.test SIP/2.0")).cseq.method == "ACK"


@pytest.mark.parametrize(
    "line",
    [
        "CSeq: 2147483648 OPTIONS",
        "CSeq: -1 OPTIONS",
        "CSeq: 1",
        "CSeq: OPTIONS 1",
        "Max-Forwards: 256",
        "Max-Forwards: abc",
        "Max-Forwards: -1",
        "Expires: 4294967296",
        "Expires: 1.5",
        "Content-Length: -999",
        "Content-Length: 1e3",
    ],
)
def test_numeric_ranges(line: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_message(request(line))
    assert info.value.reason.startswith("Malformed ")


def test_numeric_limits_accepted() -> None:
    msg = parse_req(request("CSeq: 2147483647 OPTIONS", "Max-Forwards: 0255", "Expires: 4294967295"))
    assert msg.cseq.seq == 2**31 - 1
    assert msg.max_forwards == 255
    assert msg.expires == 2**32 - 1


# ------------------------------------------------------------------ framing
def test_content_length_frames_udp_body() -> None:
    data = request(body=b"abc")
    msg = parse_req(data + b"trailing junk")
    assert msg.body == b"abc"
    assert msg.to_bytes() == data


def test_body_shorter_than_content_length() -> None:
    data = request("Content-Length: 50", body=b"abc")
    with pytest.raises(ParseError, match="Content-Length exceeds body") as info:
        parse_message(data)
    assert isinstance(info.value.partial, Request)


def test_extra_octets_ignored() -> None:
    msg = parse_req(request("Content-Length: 1", body=b"abc"))
    assert msg.body == b"a"


def test_no_content_length_over_udp_takes_rest() -> None:
    data = request("l: 0").replace(b"l: 0\r\n", b"") + b"xyz"
    msg = parse_req(data)
    assert msg.body == b"xyz"
    assert msg.content_length is None
    assert parse_req(msg.to_bytes()).content_length == 3


def test_message_size_limit() -> None:
    data = request("Content-Length: 70000", body=b"x" * 70000)
    with pytest.raises(ParseError) as info:
        parse_message(data, max_size=MAX_MESSAGE_SIZE)
    assert info.value.status == 413
    assert parse_req(data).body == b"x" * 70000


def test_stream_framer_splits_and_skips_keepalives() -> None:
    one = request(body=b"hello")
    two = request("CSeq: 2 OPTIONS")
    framer = StreamFramer()
    stream = b"\r\n\r\n" + one + b"\r\n" + two + one[:10]
    out: list[bytes] = []
    for i in range(0, len(stream), 7):  # dribble it in
        out.extend(framer.feed(stream[i : i + 7]))
    assert out == [one, two]
    assert framer.buffered == 10
    assert framer.feed(one[10:]) == [one]
    assert framer.buffered == 0


def test_stream_framer_needs_content_length() -> None:
    framer = StreamFramer()
    data = request().replace(b"Content-Length: 0\r\n", b"")
    with pytest.raises(ParseError, match="Missing Content-Length") as info:
        framer.feed(data)
    assert isinstance(info.value.partial, Request)
    with pytest.raises(ParseError):
        framer.feed(request())  # the stream is lost after a framing error


def test_stream_framer_bounds_memory() -> None:
    framer = StreamFramer(max_header_bytes=1024)
    with pytest.raises(ParseError) as info:
        for _ in range(100):
            framer.feed(b"X-Flood: " + b"a" * 100 + b"\r\n")
    assert info.value.status == 400
    assert framer.buffered < 2048
    big = StreamFramer()
    with pytest.raises(ParseError) as info:
        big.feed(request(f"Content-Length: {MAX_BODY + 1}"))
    assert info.value.status == 413
    assert big.buffered == 0


def test_stream_framer_folded_and_compact_length() -> None:
    data = request("l:\r\n 3", body=b"abc")
    assert StreamFramer().feed(data + data) == [data, data]


def test_stream_framer_conflicting_lengths() -> None:
    with pytest.raises(ParseError, match="Content-Length"):
        StreamFramer().feed(request("Content-Length: 1", "l: 2", body=b"ab"))


# ------------------------------------------------------------------ mutation and serialisation
def test_unchanged_message_reuses_bytes() -> None:
    data = request("Subject: folded\r\n value", "X-Spacing:   lots   of   space  ", body=b"body")
    msg = parse_req(data)
    assert msg.to_bytes() == data
    assert bytes(msg) == data


def test_mutations_rebuild_and_invalidate() -> None:
    data = request(
        "Via: SIP/2.0/UDP first.example;branch=z9hG4bK1, SIP/2.0/UDP second.example;branch=z9hG4bK2",
        "Route: <sip:p1.example;lr>, <sip:p2.example;lr>",
        "Max-Forwards: 70",
    )
    msg = parse_req(data)
    assert msg.top_via.host == "first.example"
    assert msg.max_forwards == 70
    assert [r.uri.host for r in msg.routes] == ["p1.example", "p2.example"]  # type: ignore[union-attr]

    msg.prepend("via", "SIP/2.0/UDP gw.example;branch=z9hG4bKgw")
    msg.set("max-forwards", str(msg.max_forwards - 1))  # type: ignore[operator]
    popped = msg.remove_first_value("route")
    assert popped == "<sip:p1.example;lr>"
    assert msg.top_via.host == "gw.example"
    assert [v.host for v in msg.vias] == ["gw.example", "first.example", "second.example"]
    assert msg.max_forwards == 69
    assert [r.uri.host for r in msg.routes] == ["p2.example"]  # type: ignore[union-attr]

    out = msg.to_bytes()
    assert out.startswith(b"OPTIONS sip:bob@example.test SIP/2.0\r\nVia: SIP/2.0/UDP gw.example;branch=z9hG4bKgw\r\n")
    again = parse_req(out)
    assert again.get_all("via")[1] == "SIP/2.0/UDP first.example;branch=z9hG4bK1, SIP/2.0/UDP second.example;branch=z9hG4bK2"
    assert again.get("route") == "<sip:p2.example;lr>"

    msg.remove_first_value("route")
    assert msg.get("route") is None and msg.routes == []
    msg.remove_first_value("via")
    assert msg.top_via.host == "first.example"
    assert msg.remove_first_value("record-route") is None


def test_set_add_remove() -> None:
    msg = parse_req(request("X-A: 1", "x-a: 2"))
    msg.set("X-A", "3")
    assert msg.get_all("x-a") == ["3"]
    assert [h for h in msg.headers if h[0] == "x-a"] == [["x-a", "X-A", "3"]]
    msg.add("record-route", "<sip:gw.example;lr>")
    assert msg.record_routes[0].uri.params == {"lr": None}  # type: ignore[union-attr]
    msg.remove("record-route")
    assert msg.record_routes == []
    msg.set("call-id", "new@id")
    assert msg.call_id == "new@id"
    assert b"\r\nCall-ID: new@id\r\n" in msg.to_bytes()


def test_body_change_recomputes_length() -> None:
    msg = parse_req(request(body=b"old"))
    msg.body = b"a longer body"
    again = parse_req(msg.to_bytes())
    assert again.body == b"a longer body"
    assert again.content_length == 13


def test_touch_after_in_place_edit() -> None:
    msg = parse_req(request())
    msg.headers[0][2] = "SIP/2.0/TCP edited.example;branch=z9hG4bKe"
    msg.touch()
    assert msg.top_via.host == "edited.example"
    assert b"edited.example" in msg.to_bytes()


def test_request_uri_change() -> None:
    msg = parse_req(request())
    assert msg.ruri.host == "example.test"  # type: ignore[union-attr]
    msg.uri = "sip:bob@192.0.2.7:5070;transport=tcp"
    assert msg.ruri.port == 5070  # type: ignore[union-attr]
    assert msg.to_bytes().startswith(b"OPTIONS sip:bob@192.0.2.7:5070;transport=tcp SIP/2.0\r\n")


def test_build_messages_from_scratch() -> None:
    req = Request("MESSAGE", SipURI("sip", "bob", "example.test"))
    req.add("via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKnew")
    req.add("from", "<sip:alice@example.test>;tag=x")
    req.add("to", "<sip:bob@example.test>")
    req.add("call-id", "c1")
    req.add("cseq", "1 MESSAGE")
    req.add("content-type", "text/plain")
    req.body = b"hi"
    again = parse_req(req.to_bytes())
    validate_for_proxy(again)
    assert again.body == b"hi"
    assert again.content_type == "text/plain"
    assert again.headers[3] == ["call-id", "Call-ID", "c1"]


def test_build_response() -> None:
    req = parse_req(
        request(
            "Via: SIP/2.0/UDP a.example;branch=z9hG4bK1",
            "Via: SIP/2.0/UDP b.example;branch=z9hG4bK2",
            "Record-Route: <sip:rr.example;lr>",
            start="INVITE sip:bob@example.test SIP/2.0",
        )
    )
    resp = build_response(req, 486, "Busy Here", to_tag="t1", headers=[("Retry-After", "30")])
    again = parse_message(resp.to_bytes())
    assert isinstance(again, Response)
    assert (again.status, again.reason) == (486, "Busy Here")
    assert [v.host for v in again.vias] == ["a.example", "b.example"]
    assert again.to_tag == "t1"
    assert again.from_tag == "1928301774"
    assert again.call_id == req.call_id
    assert again.cseq == req.cseq
    assert again.get("retry-after") == "30"
    assert again.get("record-route") is None
    assert again.content_length == 0
    # a To that already has a tag keeps it
    tagged = parse_req(request("To: <sip:bob@example.test>;tag=existing"))
    assert parse_message(build_response(tagged, 200, "OK", to_tag="new").to_bytes()).to_tag == "existing"


def test_partial_allows_400_for_bad_to() -> None:
    data = request('To: "unterminated <sip:bob@example.test>')
    msg = parse_message(data)
    with pytest.raises(ParseError) as info:
        validate_for_proxy(msg)
    exc = info.value
    assert exc.reason == "Malformed To header"
    assert isinstance(exc.partial, Request)
    out = build_response(exc.partial, 400, exc.reason, to_tag="gw").to_bytes()
    assert out.startswith(b"SIP/2.0 400 Malformed To header\r\n")
    assert b'\r\nTo: "unterminated <sip:bob@example.test>;tag=gw\r\n' in out


def test_no_partial_without_via() -> None:
    data = request("Via: garbage")
    with pytest.raises(ParseError) as info:
        validate_for_proxy(parse_message(data))
    assert info.value.reason == "Malformed Via header"
    assert info.value.partial is None


def test_responses_never_get_partial() -> None:
    data = b"SIP/2.0 200 OK\r\n" + request("CSeq: 99999999999 OPTIONS").split(b"\r\n", 1)[1]
    with pytest.raises(ParseError) as info:
        parse_message(data)
    assert info.value.partial is None


def test_replace_top_via_and_set_uri() -> None:
    msg = parse_req(request("Via: SIP/2.0/UDP a.example;branch=z9hG4bK1;rport , SIP/2.0/UDP b.example;branch=z9hG4bK2"))
    assert msg.top_via.rport is True
    msg.replace_top_via("SIP/2.0/UDP a.example;branch=z9hG4bK1;rport=5070;received=192.0.2.9")
    assert msg.top_via.rport == 5070
    assert msg.top_via.received == "192.0.2.9"
    assert [v.host for v in msg.vias] == ["a.example", "b.example"]
    assert msg.get("via") == "SIP/2.0/UDP a.example;branch=z9hG4bK1;rport=5070;received=192.0.2.9, SIP/2.0/UDP b.example;branch=z9hG4bK2"
    msg.set_uri(SipURI("sip", "bob", "192.0.2.7", 5080))
    assert msg.ruri.port == 5080  # type: ignore[union-attr]
    assert msg.to_bytes().startswith(b"OPTIONS sip:bob@192.0.2.7:5080 SIP/2.0\r\n")
    msg.remove("via")
    with pytest.raises(ParseError, match="Missing Via header"):
        msg.replace_top_via("SIP/2.0/UDP x")
