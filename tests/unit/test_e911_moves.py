"""R13 move detection from REGISTER fingerprints (e911/moves.py)."""

from __future__ import annotations

import pytest

from e911.moves import check_move, fingerprint


def test_fingerprints_use_the_source_subnet_and_contact_host() -> None:
    assert fingerprint("192.0.2.77", "192.0.2.77").as_dict() == {"subnet": "192.0.2.0/24",
                                                                  "contact_host": "192.0.2.77"}
    assert fingerprint("[2001:db8::5]", "[2001:DB8::5]").subnet == "2001:db8::/64"
    assert fingerprint("2001:db8::5", "x").contact_host == "x"
    assert fingerprint("phone.example.net", "Phone.Example.NET").subnet == "phone.example.net"
    assert fingerprint("10.1.2.3", "h", v4_prefix=16).subnet == "10.1.0.0/16"


def test_first_registration_and_same_network_are_not_moves() -> None:
    here = fingerprint("192.0.2.10", "192.0.2.10")
    assert not check_move(None, here, "desk_phone").moved
    assert not check_move(here, fingerprint("192.0.2.99", "192.0.2.10"), "desk_phone").moved


@pytest.mark.parametrize(("kind", "prompt"), [("desk_phone", False), ("ata", False), ("dect", False),
                                              ("softphone", True)])
def test_a_new_subnet_flags_the_device(kind: str, prompt: bool) -> None:
    result = check_move(fingerprint("192.0.2.10", "192.0.2.10"), fingerprint("198.51.100.4", "198.51.100.4"),
                        kind)
    assert (result.moved, result.stale, result.prompt) == (True, True, prompt)
    assert "192.0.2.0/24 → 198.51.100.0/24" in result.reason and "R13" in result.reason


def test_a_changed_contact_host_alone_is_a_move() -> None:
    result = check_move(fingerprint("192.0.2.10", "10.0.0.5"), fingerprint("192.0.2.10", "10.9.0.5"), "desk_phone")
    assert result.stale and "Contact host 10.0.0.5 → 10.9.0.5" in result.reason
    assert "source network" not in result.reason
