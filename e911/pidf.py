"""PIDF-LO (RFC 4119, RFC 5491, RFC 4479): build one for a device, parse and check one received.

Why a module of its own: the gateway builds the document that rides in every
emergency INVITE, and the PSAP simulator must judge documents that *anyone*
built. Both sides share these functions so "what we send" and "what we
accept" cannot drift apart.

Shape written (RFC 5491 §3.4: a device's location lives in `<dm:device>`)::

    presence entity="pres:+12175550123@gw.example.net"
     └─ dm:device id="dev-…"
         ├─ gp:geopriv
         │   ├─ gp:location-info → ca:civicAddress (RFC 5139 order, xml:lang)
         │   ├─ gp:usage-rules   → gbp:retransmission-allowed, gbp:retention-expiry
         │   └─ gp:method        → Manual (customer-registered address)
         ├─ dm:deviceID  (mac:001565abcdef | urn:voiplab:device:42)
         └─ dm:timestamp

Validation has two layers: the XML schemas in `e911/schemas/` (lxml
XMLSchema; `PidfValidator`) and the RFC 5491 rules a schema cannot express
(`rfc5491_problems`): e.g. usage rules in the `gp` namespace pass the schema
through its lax wildcard but are wrong.

Untrusted input is parsed without DTDs, entities or network access.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from lxml import etree  # type: ignore[import-untyped]

from e911.civic import ELEMENT_NAMES, FIELD_BY_ELEMENT, CivicAddress

NS_PIDF = "urn:ietf:params:xml:ns:pidf"
NS_DM = "urn:ietf:params:xml:ns:pidf:data-model"
NS_GP = "urn:ietf:params:xml:ns:pidf:geopriv10"
NS_CA = "urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr"
NS_GBP = "urn:ietf:params:xml:ns:pidf:geopriv10:basicPolicy"
NS_XML = "http://www.w3.org/XML/1998/namespace"
NSMAP = {None: NS_PIDF, "dm": NS_DM, "gp": NS_GP, "ca": NS_CA, "gbp": NS_GBP}

SCHEMA_DIR = Path(__file__).with_name("schemas")
#: the PIDF-LO method for a customer-registered (typed-in) address
METHOD_MANUAL = "Manual"
#: usage-rules retention when the caller gives none
DEFAULT_RETENTION = timedelta(days=1)
#: biggest document accepted for parsing (a civic PIDF-LO is ~1.5 KB)
MAX_PIDF_BYTES = 64 * 1024

DEVICE_URN_PREFIX = "urn:voiplab:device:"


def _q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


class PidfError(ValueError):
    """A document that is not a PIDF-LO we can read (not XML, wrong root, no civic address …)."""


@dataclass(frozen=True, slots=True)
class PidfLo:
    """What a civic PIDF-LO for one device says (the parsed form of `build_pidf`'s output)."""

    entity: str
    device_id: str  # <dm:deviceID>
    element_id: str  # <dm:device id=…>
    civic: CivicAddress
    lang: str | None = None  # xml:lang on <ca:civicAddress>
    method: str | None = None
    retransmission_allowed: bool | None = None
    retention_expiry: datetime | None = None
    timestamp: datetime | None = None
    #: civic elements the document carried that are not RFC 5139 elements (namespace-qualified)
    extra_elements: tuple[str, ...] = field(default=())


# --- device identifiers ---------------------------------------------------------------------

def device_uri(device_id: int, mac: str | None = None) -> str:
    """The `<dm:deviceID>` for a provisioned device: `mac:<12 hex>` when it has one, else a URN."""
    if mac:
        return "mac:" + re.sub(r"[^0-9a-f]", "", mac.lower())
    return f"{DEVICE_URN_PREFIX}{device_id}"


def parse_device_uri(uri: str) -> tuple[str, str | int] | None:
    """`("mac", "001565abcdef")`, `("device", 42)`, or None for any other form."""
    text = uri.strip()
    if text.lower().startswith("mac:"):
        mac = re.sub(r"[^0-9a-f]", "", text[4:].lower())
        return ("mac", mac) if len(mac) == 12 else None
    if text.startswith(DEVICE_URN_PREFIX) and text[len(DEVICE_URN_PREFIX):].isdigit():
        return ("device", int(text[len(DEVICE_URN_PREFIX):]))
    return None


def _element_id(device_id: str) -> str:
    """An xs:ID (an NCName) derived from the device id: `dev-` + its safe characters."""
    return "dev-" + (re.sub(r"[^A-Za-z0-9._-]", "-", device_id.split(":", 1)[-1]) or "0")


def format_datetime(value: datetime) -> str:
    """xs:dateTime in UTC with a Z and whole seconds (what the examples in the RFCs use)."""
    if value.tzinfo is None:
        raise ValueError("PIDF-LO timestamps must be timezone-aware")
    return value.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


# --- building -------------------------------------------------------------------------------

def build_pidf(civic: CivicAddress, *, entity: str, device_id: str, timestamp: datetime,
               retention_expiry: datetime | None = None, retransmission_allowed: bool = True,
               method: str = METHOD_MANUAL, lang: str | None = None,
               element_id: str | None = None) -> bytes:
    """A civic PIDF-LO for one device, UTF-8 bytes with an XML declaration.

    `entity` is the presentity, e.g. `pres:+12175550123@gw.example.net`;
    `timestamp` when the location object was made (the call's start);
    retention defaults to `timestamp + 1 day`. Retransmission is allowed by
    default because a PSAP must pass the location on to responders (a
    "false" invites RFC 6442 Geolocation-Error 201).
    """
    if not civic.country:
        raise ValueError("a civic address needs a country")
    root = etree.Element(_q(NS_PIDF, "presence"), nsmap=NSMAP)
    root.set("entity", entity)
    device = etree.SubElement(root, _q(NS_DM, "device"))
    device.set("id", element_id or _element_id(device_id))
    geopriv = etree.SubElement(device, _q(NS_GP, "geopriv"))
    info = etree.SubElement(geopriv, _q(NS_GP, "location-info"))
    address = etree.SubElement(info, _q(NS_CA, "civicAddress"))
    if lang:
        address.set(_q(NS_XML, "lang"), lang)
    for name, value in civic.elements().items():
        etree.SubElement(address, _q(NS_CA, ELEMENT_NAMES[name])).text = value
    rules = etree.SubElement(geopriv, _q(NS_GP, "usage-rules"))
    etree.SubElement(rules, _q(NS_GBP, "retransmission-allowed")).text = (
        "true" if retransmission_allowed else "false")
    expiry = retention_expiry or timestamp + DEFAULT_RETENTION
    etree.SubElement(rules, _q(NS_GBP, "retention-expiry")).text = format_datetime(expiry)
    etree.SubElement(geopriv, _q(NS_GP, "method")).text = method
    etree.SubElement(device, _q(NS_DM, "deviceID")).text = device_id
    etree.SubElement(device, _q(NS_DM, "timestamp")).text = format_datetime(timestamp)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


# --- parsing --------------------------------------------------------------------------------

def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           huge_tree=False, remove_comments=False)


def parse_xml(data: bytes) -> etree._Element:
    """Parse untrusted XML safely; PidfError when it is not well-formed (or too large, or has a DTD)."""
    if len(data) > MAX_PIDF_BYTES:
        raise PidfError(f"PIDF-LO larger than {MAX_PIDF_BYTES} bytes")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise PidfError("PIDF-LO must not carry a DTD")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise PidfError(f"not well-formed XML: {exc}") from exc
    return root


def _text(el: etree._Element | None) -> str | None:
    if el is None or el.text is None:
        return None
    text = " ".join(el.text.split())
    return text or None


def _datetime(el: etree._Element | None, what: str) -> datetime | None:
    text = _text(el)
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise PidfError(f"{what} {text!r} is not an xs:dateTime") from exc
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _boolean(el: etree._Element | None) -> bool | None:
    text = _text(el)
    if text is None:
        return None
    return {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}.get(text.lower())


def parse_pidf(data: bytes) -> PidfLo:
    """Read the first device's civic location from a PIDF-LO (lenient: validate separately).

    Raises PidfError when there is no `<presence>`, no device (or tuple /
    person) carrying a `<gp:geopriv>` with a `<ca:civicAddress>`.
    """
    root = parse_xml(data)
    if root.tag != _q(NS_PIDF, "presence"):
        raise PidfError(f"root element is {root.tag}, not a PIDF <presence>")
    holder, geopriv = _location_holder(root)
    address = geopriv.find(f"{_q(NS_GP, 'location-info')}/{_q(NS_CA, 'civicAddress')}")
    if address is None:
        raise PidfError("no <ca:civicAddress> in <gp:location-info> (only civic locations are supported)")
    values: dict[str, str | None] = {}
    extra: list[str] = []
    for child in address:
        if not isinstance(child.tag, str):
            continue  # comments, processing instructions
        qname = etree.QName(child)
        name = FIELD_BY_ELEMENT.get(qname.localname) if qname.namespace == NS_CA else None
        if name is None:
            extra.append(child.tag)
            continue
        values[name] = _text(child)
    country = values.pop("country", None) or ""
    civic = CivicAddress(country=country, **values)
    rules = geopriv.find(_q(NS_GP, "usage-rules"))
    retx = expiry = None
    if rules is not None:
        # RFC 5491 wants gbp; read gp too so that a wrong-namespace document can still be shown
        retx = _boolean(rules.find(_q(NS_GBP, "retransmission-allowed"))
                        if rules.find(_q(NS_GBP, "retransmission-allowed")) is not None
                        else rules.find(_q(NS_GP, "retransmission-allowed")))
        expiry_el = rules.find(_q(NS_GBP, "retention-expiry"))
        if expiry_el is None:
            expiry_el = rules.find(_q(NS_GP, "retention-expiry"))
        expiry = _datetime(expiry_el, "retention-expiry")
    device_id_el = holder.find(_q(NS_DM, "deviceID"))
    timestamp_el = holder.find(_q(NS_DM, "timestamp"))
    if timestamp_el is None:
        timestamp_el = holder.find(_q(NS_PIDF, "timestamp"))
    return PidfLo(
        entity=root.get("entity", ""),
        device_id=_text(device_id_el) or "",
        element_id=holder.get("id", ""),
        civic=civic,
        lang=address.get(_q(NS_XML, "lang")),
        method=_text(geopriv.find(_q(NS_GP, "method"))),
        retransmission_allowed=retx,
        retention_expiry=expiry,
        timestamp=_datetime(timestamp_el, "timestamp"),
        extra_elements=tuple(extra),
    )


def _location_holder(root: etree._Element) -> tuple[etree._Element, etree._Element]:
    """The element carrying the location (device, then person, then tuple) and its geopriv."""
    for holder in root.iter(_q(NS_DM, "device"), _q(NS_DM, "person")):
        geopriv = holder.find(_q(NS_GP, "geopriv"))
        if geopriv is not None:
            return holder, geopriv
    for holder in root.iter(_q(NS_PIDF, "tuple")):
        geopriv = holder.find(f"{_q(NS_PIDF, 'status')}/{_q(NS_GP, 'geopriv')}")
        if geopriv is not None:
            return holder, geopriv
    raise PidfError("no <gp:geopriv> in a <dm:device>, <dm:person> or <tuple>")


# --- checking -------------------------------------------------------------------------------

def rfc5491_problems(data: bytes) -> list[str]:
    """What RFC 5491 (and RFC 4119 usage) requires of a device PIDF-LO that the schema lets pass.

    One message per problem; [] means fine. Checks: the location is in a
    `<dm:device>` with an `id` and a `<dm:deviceID>`; exactly one `<gp:geopriv>`
    per device; the usage rules are in the basicPolicy (`gbp`) namespace; a
    `<gp:method>` and a `<dm:timestamp>` are present; a civic address is there.
    """
    try:
        root = parse_xml(data)
    except PidfError as exc:
        return [str(exc)]
    problems: list[str] = []
    if root.tag != _q(NS_PIDF, "presence"):
        return [f"root element is {root.tag}, not a PIDF <presence>"]
    if not root.get("entity"):
        problems.append("<presence> has no entity attribute")
    devices = root.findall(_q(NS_DM, "device"))
    if not devices:
        if root.find(f".//{_q(NS_GP, 'geopriv')}") is not None:
            problems.append("the location is not in a <dm:device> (RFC 5491 §3.4: device location "
                            "belongs in <dm:device>)")
        else:
            problems.append("no <dm:device> with a location")
        return problems
    for device in devices:
        label = f"<dm:device id={device.get('id')!r}>"
        if not device.get("id"):
            problems.append("<dm:device> has no id attribute")
        geoprivs = device.findall(_q(NS_GP, "geopriv"))
        if len(geoprivs) != 1:
            problems.append(f"{label} has {len(geoprivs)} <gp:geopriv> elements; RFC 5491 §3.2 wants one")
        if device.find(_q(NS_DM, "deviceID")) is None:
            problems.append(f"{label} has no <dm:deviceID>")
        if device.find(_q(NS_DM, "timestamp")) is None:
            problems.append(f"{label} has no <dm:timestamp>")
        for geopriv in geoprivs:
            if geopriv.find(f"{_q(NS_GP, 'location-info')}/{_q(NS_CA, 'civicAddress')}") is None:
                problems.append(f"{label} has no <ca:civicAddress> in <gp:location-info>")
            rules = geopriv.find(_q(NS_GP, "usage-rules"))
            if rules is None:
                problems.append(f"{label} has no <gp:usage-rules>")
            else:
                for child in rules:
                    if not isinstance(child.tag, str):
                        continue
                    qname = etree.QName(child)
                    if qname.localname in ("retransmission-allowed", "retention-expiry",
                                           "external-ruleset", "note-well") and qname.namespace != NS_GBP:
                        problems.append(f"<{qname.localname}> is in namespace {qname.namespace!r}; "
                                        "RFC 5491 puts usage rules in the basicPolicy (gbp) namespace")
            if _text(geopriv.find(_q(NS_GP, "method"))) is None:
                problems.append(f"{label} has no <gp:method>")
    return problems


class PidfValidator:
    """The PIDF-LO schemas compiled once (lxml XMLSchema); create one per process and pass it in.

    Reading the six XSDs takes a few milliseconds, so the PSAP and the tests
    hold one instance instead of compiling per document.
    """

    def __init__(self, schema_dir: Path | None = None) -> None:
        root = (schema_dir or SCHEMA_DIR) / "pidf-lo.xsd"
        self.schema = etree.XMLSchema(etree.parse(str(root), _parser()))

    def schema_errors(self, data: bytes) -> list[str]:
        """Schema violations, one message per error with its line; [] means valid."""
        try:
            doc = parse_xml(data)
        except PidfError as exc:
            return [str(exc)]
        if self.schema.validate(doc):
            return []
        return [f"line {e.line}: {e.message}" for e in self.schema.error_log]

    def problems(self, data: bytes) -> list[str]:
        """Schema errors followed by RFC 5491 problems; [] means the document is a good device PIDF-LO."""
        errors = self.schema_errors(data)
        return errors + [p for p in rfc5491_problems(data) if p not in errors]
