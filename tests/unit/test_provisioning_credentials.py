"""SIP credentials: HA1 against published digest vectors; generated secrets."""

from __future__ import annotations

import hashlib
import re

from provisioning.credentials import generate_password, generate_sip_username, ha1_digests


def _response(hash_name: str, ha1: str, method: str, uri: str, nonce: str, nc: str, cnonce: str) -> str:
    h = lambda s: hashlib.new(hash_name, s.encode()).hexdigest()  # noqa: E731
    ha2 = h(f"{method}:{uri}")
    return h(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")


def test_md5_ha1_matches_rfc2617_example() -> None:
    # RFC 2617 §3.5: Mufasa / testrealm@host.com / "Circle Of Life"
    assert ha1_digests("Mufasa", "testrealm@host.com", "Circle Of Life").md5 == \
        "939e7578ed9e3c518a452acee763bce9"


def test_both_ha1_give_rfc7616_example_responses() -> None:
    # RFC 7616 §3.9.1: the same challenge answered with MD5 and with SHA-256.
    ha1 = ha1_digests("Mufasa", "http-auth@example.org", "Circle of Life")
    args = ("GET", "/dir/index.html", "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", "00000001",
            "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ")
    assert _response("md5", ha1.md5, *args) == "8ca523f5e9506fed4657c9700eebdbec"
    assert _response("sha256", ha1.sha256, *args) == \
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"


def test_passwords_are_long_mixed_and_distinct() -> None:
    passwords = [generate_password() for _ in range(500)]
    assert len(set(passwords)) == len(passwords)
    for pw in passwords:
        assert len(pw) == 24
        assert re.search(r"[a-z]", pw) and re.search(r"[A-Z]", pw) and re.search(r"[0-9]", pw)
        assert not set(pw) & set("0O1lI")  # no look-alikes to mistype into a phone
        assert pw.isalnum()


def test_sip_username_keeps_extension_readable() -> None:
    names = {generate_sip_username("1001") for _ in range(200)}
    assert len(names) == 200
    assert all(re.fullmatch(r"1001-[a-z2-9]{6}", n) for n in names)
