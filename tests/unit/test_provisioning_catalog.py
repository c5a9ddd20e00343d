"""Hardware profile catalog loading/validation and the civic field list."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from e911.civic import CIVIC_FIELDS, CivicAddress
from hardware_profiles.catalog import CatalogError, load_catalog, parse_profile
from provisioning.models import Location
from provisioning.schemas import LocationCreate, LocationOut

GOOD = {"id": "acme-x1", "vendor": "Acme", "model": "X1", "kind": "desk", "max_lines": 2,
        "mac_policy": "required"}


def test_shipped_catalog_loads() -> None:
    catalog = load_catalog()
    assert {"softphone-desktop", "softphone-mobile", "yealink-t54w"} <= {p.id for p in catalog}
    for profile in catalog:
        assert profile.kind == "softphone" or profile.mac_policy == "required"
        if profile.kind == "softphone":
            assert profile.mac_policy == "forbidden" and profile.max_lines == 1
    t54w = catalog.get("yealink-t54w")
    assert t54w is not None and t54w.max_lines == 16 and "001565" in t54w.ouis
    assert t54w.provenance["max_lines"].startswith("verified:")


@pytest.mark.parametrize(("patch", "field"), [
    ({"kind": "toaster"}, "kind"),
    ({"max_lines": 0}, "max_lines"),
    ({"max_lines": True}, "max_lines"),
    ({"mac_policy": "maybe"}, "mac_policy"),
    ({"id": "Has Spaces"}, "id"),
    ({"vendor": ""}, "vendor"),
    ({"transports": ["carrier-pigeon"]}, "transports"),
    ({"ouis": ["00:15"]}, "ouis"),
    ({"colour": "red"}, "colour"),
    ({"provenance": {"max_lines": "trust me"}}, "provenance.max_lines"),
    ({"provenance": {"weight": "verified: scale"}}, "provenance.weight"),
])
def test_bad_profile_names_file_and_field(patch: dict[str, object], field: str) -> None:
    with pytest.raises(CatalogError) as err:
        parse_profile({**GOOD, **patch}, "acme-x1.toml")
    assert err.value.field == field and err.value.source == "acme-x1.toml"


def test_loader_checks_file_name_and_toml(tmp_path: Path) -> None:
    (tmp_path / "acme-x2.toml").write_text(
        'id = "acme-x1"\nvendor = "Acme"\nmodel = "X1"\nkind = "desk"\nmax_lines = 2\n'
        'mac_policy = "required"\n')
    with pytest.raises(CatalogError, match="must match the file name"):
        load_catalog(tmp_path)
    (tmp_path / "acme-x2.toml").write_text("id = [unterminated")
    with pytest.raises(CatalogError, match="invalid TOML"):
        load_catalog(tmp_path)
    (tmp_path / "acme-x2.toml").unlink()
    with pytest.raises(CatalogError, match="no hardware profiles"):
        load_catalog(tmp_path)


def test_civic_fields_agree_across_layers() -> None:
    assert tuple(f.name for f in fields(CivicAddress)) == CIVIC_FIELDS
    assert set(CIVIC_FIELDS) <= set(Location.model_fields)
    assert set(CIVIC_FIELDS) <= set(LocationCreate.model_fields)
    assert set(CIVIC_FIELDS) <= set(LocationOut.model_fields)


def test_civic_elements_in_schema_order() -> None:
    addr = CivicAddress(country="US", room="301", a1="TX", hno="100", rd="Congress")
    assert list(addr.elements()) == ["country", "a1", "rd", "hno", "room"]
