"""Digest authentication: published vectors, real captured clients, parser edge cases."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sipmessage import AuthChallenge, AuthCredentials

from gateway.sip.digest import (
    Algorithm,
    build_challenge,
    build_credentials,
    expected_response,
    ha1,
    parse_challenge,
    parse_credentials,
    verify,
)
from gateway.sip.errors import ParseError

# ---------------------------------------------------------------------------
# Captured second REGISTERs from real clients (shared/notes/sip-peers.md §6).
# Realm example.test; alice's password is "secret", bob's "hunter2".

BARESIP = (
    b"REGISTER sip:127.0.0.1:25060;transport=udp SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:25090;branch=z9hG4bK10dcca80b5e249da;rport\r\n"
    b'Contact: <sip:alice-0x55731a6e1970@127.0.0.1:25090>;expires=60;+sip.instance="<urn:uuid:8a1ba46c-ccd6-bd10-d7bb-edf555474d85>"\r\n'
    b"Max-Forwards: 70\r\n"
    b'Authorization: Digest username="alice", realm="example.test", nonce="6b0c24b4.0ffd8f535c05438baa999a03", uri="sip:127.0.0.1:25060;transport=udp", response="4617dea5ba97768e2789f4f79c5561db", cnonce="8278cc87269c3601", qop=auth, nc=00000001\r\n'
    b"To: <sip:alice@127.0.0.1:25060>\r\n"
    b"From: <sip:alice@127.0.0.1:25060>;tag=aa1c43509e4924f7\r\n"
    b"Call-ID: be8676c460d31674\r\n"
    b"CSeq: 40173 REGISTER\r\n"
    b"User-Agent: baresip v1.0.0 (x86_64/linux)\r\n"
    b"Allow: INVITE,ACK,BYE,CANCEL,OPTIONS,NOTIFY,SUBSCRIBE,INFO,MESSAGE,REFER\r\n"
    b"Content-Length: 0\r\n\r\n"
)

LINPHONE = (
    b"REGISTER sip:127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:25092;branch=z9hG4bK.XMystReyR;rport\r\n"
    b'From: "alice" <sip:alice@127.0.0.1>;tag=Xq40afjxP\r\n'
    b'To: "alice" <sip:alice@127.0.0.1>\r\n'
    b"CSeq: 21 REGISTER\r\n"
    b"Call-ID: 0bNU7YYopW\r\n"
    b"Max-Forwards: 70\r\n"
    b"Supported: replaces, outbound, gruu\r\n"
    b"Accept: application/sdp\r\n"
    b"Accept: text/plain\r\n"
    b"Accept: application/vnd.gsma.rcs-ft-http+xml\r\n"
    b'Contact: "alice" <sip:alice@127.0.0.1:25092;transport=udp>;+sip.instance="<urn:uuid:decfbf29-9737-007c-bfe9-a2dc652ccd2b>"\r\n'
    b"Expires: 60\r\n"
    b"User-Agent: Linphonec/5.1.65\r\n"
    b'Authorization:  Digest realm="example.test", nonce="6b0c24b7.4e5f742bdee5acd044caabed", algorithm=MD5, username="alice",  uri="sip:127.0.0.1", response="e9fa6bffbfa3431469ecc2b921af6a37", cnonce="ivzKTemIJ7nB0eop", nc=00000001, qop=auth\r\n'
    b"\r\n"
)

PJSUA2 = (
    b"REGISTER sip:127.0.0.1:25060 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:50326;rport;branch=z9hG4bKPjwh1D-fMmH-GhXQEFh1N1-S2aP1tMCSeO\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:alice@127.0.0.1>;tag=WsRons95I87uw42GnjCCUXpeZNzGgeXk\r\n"
    b"To: <sip:alice@127.0.0.1>\r\n"
    b"Call-ID: EpVpq8v04-zs5hwqDxfY2ED3Hr2KNtQT\r\n"
    b"CSeq: 9295 REGISTER\r\n"
    b"User-Agent: pjsua2-test-client\r\n"
    b"Contact: <sip:alice@127.0.0.1:50326;ob>\r\n"
    b"Expires: 300\r\n"
    b"Allow: PRACK, INVITE, ACK, BYE, CANCEL, UPDATE, INFO, SUBSCRIBE, NOTIFY, REFER, MESSAGE, OPTIONS\r\n"
    b'Authorization: Digest username="alice", realm="example.test", nonce="6b0c24b0.824d07afe5282efdb57c7774", uri="sip:127.0.0.1:25060", response="62a0fd046f8d67f88960c08a8ae5a4a4", algorithm=MD5, cnonce="Eg2ulhi9H.MuofWcJZcjuH5MXzrW863J", qop=auth, nc=00000001\r\n'
    b"Content-Length:  0\r\n\r\n"
)

SIPP = (
    b"REGISTER sip:127.0.0.1:25060 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:25072;branch=z9hG4bK-31845-1-2;rport\r\n"
    b"From: <sip:bob@127.0.0.1:25060>;tag=31845SIPpTag001\r\n"
    b"To: <sip:bob@127.0.0.1:25060>\r\n"
    b"Call-ID: 1-31845@127.0.0.1\r\n"
    b"CSeq: 2 REGISTER\r\n"
    b"Contact: <sip:bob@127.0.0.1:25072>\r\n"
    b'Authorization: Digest username="bob",realm="example.test",cnonce="6b8b4567",nc=00000001,qop=auth,uri="sip:127.0.0.1:25060",nonce="6b0c24b4.0ffd8f535c05438baa999a03",response="b39de84aa0d08261ac8a133b74508a20",algorithm=MD5\r\n'
    b"Max-Forwards: 70\r\n"
    b"Expires: 60\r\n"
    b"User-Agent: SIPp-register-test\r\n"
    b"Content-Length: 0\r\n\r\n"
)

PASSWORDS = {"alice": "secret", "bob": "hunter2"}
CAPTURED = {"baresip": BARESIP, "linphone": LINPHONE, "pjsua2": PJSUA2, "sipp": SIPP}


def _authorization_line(raw: bytes) -> str:
    """The Authorization value of a captured message, read through our own parser."""
    from gateway.sip.parser import parse_message

    msg = parse_message(raw)
    value = msg.get("authorization")
    assert value is not None
    return value


@pytest.mark.parametrize("client", sorted(CAPTURED))
def test_captured_register_verifies(client: str) -> None:
    from gateway.sip.message import Request
    from gateway.sip.parser import parse_message

    raw = CAPTURED[client]
    msg = parse_message(raw)
    assert isinstance(msg, Request)
    creds = parse_credentials(_authorization_line(raw))
    assert creds.realm == "example.test"
    assert creds.algorithm is Algorithm.MD5
    assert creds.qop == "auth" and creds.nc == 1
    key = ha1(Algorithm.MD5, creds.username, creds.realm, PASSWORDS[creds.username])
    assert verify(creds, key, msg.method)


@pytest.mark.parametrize("client", sorted(CAPTURED))
def test_captured_register_rejects_wrong_password_and_method(client: str) -> None:
    creds = parse_credentials(_authorization_line(CAPTURED[client]))
    wrong = ha1(Algorithm.MD5, creds.username, creds.realm, "not-" + PASSWORDS[creds.username])
    assert not verify(creds, wrong, "REGISTER")
    right = ha1(Algorithm.MD5, creds.username, creds.realm, PASSWORDS[creds.username])
    assert not verify(creds, right, "INVITE")
    # A different HA1 algorithm claimed by the client cannot pass with an MD5 HA1.
    sha_creds = parse_credentials(
        _authorization_line(CAPTURED[client]).replace("algorithm=MD5", "") + ", algorithm=SHA-256"
    )
    assert sha_creds.algorithm is Algorithm.SHA256
    assert not verify(sha_creds, right, "REGISTER")


@pytest.mark.parametrize("client", sorted(CAPTURED))
def test_captured_values_agree_with_sipmessage(client: str) -> None:
    """sipmessage is right on these well-formed values: use it as an oracle."""
    value = _authorization_line(CAPTURED[client])
    ours = parse_credentials(value)
    theirs = AuthCredentials.parse(value.strip())
    assert theirs.parameters is not None
    assert {k.lower(): v for k, v in theirs.parameters.items()} == ours.params


# ---------------------------------------------------------------------------
# Published vectors


def test_rfc7616_3_9_1_md5_and_sha256() -> None:
    nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
    cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
    published = {
        Algorithm.MD5: "8ca523f5e9506fed4657c9700eebdbec",
        Algorithm.SHA256: "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
    }
    for alg, response in published.items():
        key = ha1(alg, "Mufasa", "http-auth@example.org", "Circle of Life")
        got = expected_response(alg, key, "GET", "/dir/index.html", nonce, 1, cnonce, "auth")
        assert got == response
        # The RFC's Authorization header, as a client would send it.
        creds = parse_credentials(
            f'Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", '
            f'algorithm={alg.value}, nonce="{nonce}", nc=00000001, cnonce="{cnonce}", qop=auth, '
            f'response="{response}", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
        )
        assert creds.opaque == "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
        assert verify(creds, key, "GET")


def test_rfc2617_3_5_example() -> None:
    key = ha1(Algorithm.MD5, "Mufasa", "testrealm@host.com", "Circle Of Life")
    creds = parse_credentials(
        'Digest username="Mufasa",\r\n realm="testrealm@host.com",\r\n'
        ' nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",\r\n uri="/dir/index.html",\r\n'
        ' qop=auth,\r\n nc=00000001,\r\n cnonce="0a4f113b",\r\n'
        ' response="6629fae49393a05397450978507c4ef1",\r\n'
        ' opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    assert verify(creds, key, "GET")


def test_rfc2069_no_qop() -> None:
    # RFC 2069 §2.4's printed response is wrong (erratum); this is the corrected value.
    key = ha1(Algorithm.MD5, "Mufasa", "testrealm@host.com", "CircleOfLife")
    creds = parse_credentials(
        'Digest username="Mufasa", realm="testrealm@host.com", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", '
        'response="1949323746fe6a43ef61f9606e7febea", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    assert creds.qop is None and creds.nc == 0 and creds.nc_raw is None
    assert verify(creds, key, "GET")


# ---------------------------------------------------------------------------
# Credentials parser


def test_credentials_quote_aware_and_case_insensitive() -> None:
    creds = parse_credentials(
        'DIGEST Username="a\\"b", REALM="x, y", nonce="n,1", uri="sip:u@h;a=b,c",'
        ' response="ABCDEF0123456789abcdef0123456789", qop="AUTH", NC=0000000A, cnonce="c",'
        " , , x-unknown=tok"
    )
    assert creds.scheme == "DIGEST"
    assert creds.username == 'a"b'
    assert creds.realm == "x, y"
    assert creds.nonce == "n,1"
    assert creds.uri == "sip:u@h;a=b,c"
    assert creds.response == "abcdef0123456789abcdef0123456789"
    assert creds.qop == "auth"
    assert creds.nc == 10 and creds.nc_raw == "0000000A"
    assert creds.params["x-unknown"] == "tok"


@pytest.mark.parametrize(
    "value",
    [
        "",
        "Digest",
        "Basic dXNlcjpwYXNz",
        'Digest username="a", realm="r", nonce="n", uri="u"',  # no response
        'Digest username="a", realm="r", nonce="n", uri="u", response="zz"',  # not hex
        'Digest username="a", realm="r", nonce="n", uri="u", response="00", username="b"',
        'Digest username="a", realm="r", nonce="n", uri="u", response="00", algorithm=MD5-sess',
        'Digest username="a", realm="r", nonce="n", uri="u", response="00", qop=auth',  # no nc
        'Digest username="a", realm="r", nonce="n", uri="u", response="00", qop=auth, nc=1, cnonce="c"',
        'Digest username="a", realm="r", nonce="n", uri="u", response="00", qop=bogus, nc=00000001, cnonce="c"',
        'Digest username="a, realm="r", nonce="n", uri="u", response="00"',  # unbalanced quote
        'Digest username=a b, realm="r", nonce="n", uri="u", response="00"',
        "Digest username",
    ],
)
def test_credentials_malformed_is_400(value: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_credentials(value)
    assert info.value.status == 400
    assert info.value.reason and "\r" not in info.value.reason


@given(st.text(max_size=200))
def test_credentials_parser_never_crashes(value: str) -> None:
    try:
        creds = parse_credentials(value)
    except ParseError as exc:
        assert exc.status == 400
    else:
        assert creds.username is not None


# ---------------------------------------------------------------------------
# Challenges


def test_challenge_with_qop_list_and_comma_realm() -> None:
    ch = parse_challenge(
        'Digest realm="a, b", nonce="n", qop="auth,auth-int", algorithm=MD5, stale=TRUE, '
        'opaque="o", domain="sip:x sip:y"'
    )
    assert ch.realm == "a, b"
    assert ch.qop == ("auth", "auth-int")
    assert ch.algorithm is Algorithm.MD5
    assert ch.stale is True
    assert ch.opaque == "o" and ch.domain == "sip:x sip:y"


def test_challenge_unknown_algorithm_and_2069() -> None:
    ch = parse_challenge('Digest realm="r",nonce="n",algorithm=SHA-512-256')
    assert ch.algorithm is None and ch.qop == () and ch.stale is False
    with pytest.raises(ParseError):
        build_credentials(ch, "u", "p", "REGISTER", "sip:r", cnonce="c")
    with pytest.raises(ParseError):
        parse_challenge('Digest realm="r"')
    with pytest.raises(ParseError):
        parse_challenge('Bearer realm="r", nonce="n"')


@pytest.mark.parametrize("alg", list(Algorithm))
@pytest.mark.parametrize("stale", [False, True])
def test_build_challenge_accepted_by_sipmessage(alg: Algorithm, stale: bool) -> None:
    value = build_challenge("example.test", "abc-_123", algorithm=alg, stale=stale, opaque="op")
    theirs = AuthChallenge.parse(value)
    assert theirs.scheme == "Digest"
    params = dict(theirs.parameters.items()) if theirs.parameters else {}
    assert params["realm"] == "example.test"
    assert params["nonce"] == "abc-_123"
    assert params["algorithm"] == alg.value
    assert params.get("stale") == ("true" if stale else None)
    ours = parse_challenge(value)
    assert (ours.algorithm, ours.stale, ours.qop, ours.opaque) == (alg, stale, ("auth",), "op")


_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30)


@given(
    realm=_TEXT,
    nonce=_TEXT,
    username=_TEXT,
    password=st.text(max_size=30),
    uri=_TEXT,
    alg=st.sampled_from(list(Algorithm)),
    qop=st.sampled_from(["auth", "auth,auth-int", "auth-int", None]),
    nc=st.integers(min_value=1, max_value=2**32 - 1),
)
def test_challenge_answer_roundtrip(
    realm: str,
    nonce: str,
    username: str,
    password: str,
    uri: str,
    alg: Algorithm,
    qop: str | None,
    nc: int,
) -> None:
    """Whatever the server challenges with, the matching client answer verifies."""
    ch = parse_challenge(build_challenge(realm, nonce, algorithm=alg, qop=qop))
    assert (ch.realm, ch.nonce, ch.algorithm) == (realm, nonce, alg)
    value = build_credentials(
        ch, username, password, "INVITE", uri, cnonce="0a4f113b", nc=nc, body=b"v=0"
    )
    creds = parse_credentials(value)
    assert (creds.username, creds.realm, creds.uri) == (username, realm, uri)
    assert creds.nc == (nc if qop else 0)
    key = ha1(alg, username, realm, password)
    assert verify(creds, key, "INVITE", body=b"v=0")
    assert not verify(creds, key, "BYE", body=b"v=0")
    assert not verify(creds, ha1(alg, username, realm, password + "x"), "INVITE", body=b"v=0")


@pytest.mark.parametrize(
    "value",
    [
        'Digest a="' + "x" * 16000,
        "Digest " + "x" * 16000,
        "Digest a=b " + "x" * 16000,
        "Digest " + "," * 16000 + "x",
        'Digest a="' + '\\"' * 8000,
    ],
    ids=["open-quote", "bare-token", "junk-after-value", "commas", "escapes"],
)
def test_hostile_header_sized_values_are_rejected(value: str) -> None:
    """Header-sized garbage (the parser allows 16 KB) fails cleanly; the scanner is
    anchored, so this is linear (an unanchored search was quadratic: seconds each)."""
    with pytest.raises(ParseError):
        parse_credentials(value)
    with pytest.raises(ParseError):
        parse_challenge(value)
