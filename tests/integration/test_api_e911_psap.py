"""Provisioning's snapshot as the PSAP simulator's truth, over real UDP on 127.0.0.1.

A location and a desk phone are provisioned over HTTP (SQLite and PostgreSQL); the PIDF-LO is
built from the directory snapshot the way the gateway does (`gateway.emergency.pidf_for_call`),
the PSAP simulator looks the device up in the same snapshot (`registered_location`), and its
verdicts go through `E911Store` into `GET /api/v1/emergency/calls`. A PATCH of the location
reaches the PSAP's lookup without a restart: the old PIDF-LO now fails field by field, a fresh
one passes, and 933 reads the new address back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from e911.conveyance import parse_multipart
from gateway.emergency import pidf_for_call
from gateway.psap import PsapLog, PsapServer
from gateway.psap.invite import build_emergency_invite
from gateway.sip.message import Request, Response
from gateway.sip.parser import parse_message
from provisioning.e911_store import E911Store
from provisioning.events import ChangeBus
from tests.conftest_db import Api, db_url, prov, random_mac  # noqa: F401

DOMAIN = "gw.voiplab.test"
TIMEOUT = 5.0


class UdpPhone(asyncio.DatagramProtocol):
    """Sends what it is given and queues every response (the PSAP sends no requests here)."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[Response] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        msg = parse_message(data)
        if isinstance(msg, Response):
            self.inbox.put_nowait(msg)

    @property
    def local(self) -> tuple[str, int]:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return host, port

    async def call(self, req: Request, psap: PsapServer) -> Response:
        """Send the INVITE, wait for its final answer and ACK it (non-2xx ACKs reuse the branch)."""
        assert self.transport is not None
        self.transport.sendto(req.to_bytes(), (psap.host, psap.port))
        while True:
            resp = await asyncio.wait_for(self.inbox.get(), TIMEOUT)
            if resp.status >= 200:
                break
        via = req.get("via") or ""
        target = resp.values("contact")[0].strip("<>") if resp.status < 300 else req.uri
        if resp.status < 300:
            via = via.replace("branch=", "branch=ack")
        ack = (f"ACK {target} SIP/2.0\r\nVia: {via}\r\nFrom: {req.get('from')}\r\nTo: {resp.get('to')}\r\n"
               f"Call-ID: {req.call_id}\r\nCSeq: {req.cseq.seq} ACK\r\nContent-Length: 0\r\n\r\n").encode()
        self.transport.sendto(ack, (psap.host, psap.port))
        return resp


@pytest.fixture
async def phone() -> AsyncIterator[UdpPhone]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(UdpPhone, local_addr=("127.0.0.1", 0))
    yield protocol
    transport.close()


@pytest.fixture
async def psap(prov: Api) -> AsyncIterator[tuple[PsapServer, list[dict[str, Any]]]]:  # noqa: F811
    """The simulator with provisioning's lookup; every record change captured as the gateway would
    queue it for its writer thread."""
    changes: list[dict[str, Any]] = []
    log = PsapLog(on_change=lambda call: changes.append(call.to_dict()))
    server = await PsapServer.start("127.0.0.1", 0, log=log,
                                    lookup=lambda uri: prov.directory.snapshot.registered_location(uri))
    yield server, changes
    await server.close()


def provision(prov: Api) -> tuple[int, int, int]:  # noqa: F811
    """Account, a four-storey site (floor needed), an active desk phone whose notice was acknowledged."""
    acc = prov.account()["id"]
    place = prov.location(acc, site_needs={"floor": True}, bld="North Tower", flr="4", room="410")
    user = prov.user(acc, "4401")
    r = prov.post(f"/accounts/{acc}/devices", {"hardware_profile": "yealink-t54w", "name": "desk",
                                               "mac": random_mac(), "lines": [{"user_id": user["id"]}]})
    assert r.status_code == 201, r.text
    dev = r.json()["id"]
    assert prov.post(f"/devices/{dev}/location", {"location_id": place["id"]}).status_code == 200
    assert prov.post(f"/devices/{dev}/activate").status_code == 200
    assert prov.post(f"/devices/{dev}/e911-notice:acknowledge").status_code == 200
    return acc, place["id"], dev


def invite_from_snapshot(prov: Api, device_id: int, phone: UdpPhone, **kw: Any) -> tuple[Request, bytes]:  # noqa: F811
    """The emergency INVITE as the gateway builds it, from the snapshot alone (no database)."""
    snap = prov.directory.snapshot
    device = snap.devices[device_id]
    location = snap.device_location(device_id)
    assert location is not None and device.location_forwarding and location.valid
    pidf, cid = pidf_for_call(location.civic, device_id=device.id, mac=device.mac,
                              callback=location.callback_number, domain=DOMAIN, now=datetime.now(UTC))
    return build_emergency_invite(local=phone.local, pidf=pidf, cid=cid, callback=location.callback_number,
                                  domain=DOMAIN, **kw), pidf


async def until(predicate: Any, what: str) -> None:
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def test_the_psap_checks_calls_against_provisioning_and_its_verdicts_are_stored(
        prov: Api, psap: tuple[PsapServer, list[dict[str, Any]]], phone: UdpPhone) -> None:  # noqa: F811
    server, changes = psap
    acc, place, dev = await asyncio.to_thread(provision, prov)
    bus = ChangeBus()
    bus.subscribe(prov.directory.apply)
    store = E911Store(prov.engine, bus=bus)

    req, sent_pidf = invite_from_snapshot(prov, dev, phone)
    ok = await phone.call(req, server)
    assert ok.status == 200
    record = server.log.get(req.call_id)
    assert record is not None
    await until(lambda: record.state == "confirmed", "the ACK")
    assert record.verdict == "pass", record.to_dict()
    assert record.conveyed == record.expected and record.expected is not None
    assert record.expected["flr"] == "4" and record.expected["bld"] == "North Tower"
    assert record.callback == "+15125550100" and record.differences == []

    started = datetime.now(UTC)
    await asyncio.to_thread(store.record_emergency_calls, [{
        "call_id": req.call_id, "account_id": acc, "device_id": dev, "location_id": place, "dialled": "911",
        "service_urn": "urn:service:sos", "route_kind": "psap", "code": "forwarding_on", "rule_id": "R15",
        "with_location": True, "callback": "+15125550100", "pidf": sent_pidf, "started_at": started}])
    await asyncio.to_thread(store.record_psap_calls, list(changes))
    [stored] = await asyncio.to_thread(lambda: prov.get("/emergency/calls", call_id=req.call_id).json())
    assert stored["pidf"] == sent_pidf.decode()  # the exact document sent
    assert stored["psap"]["verdict"] == "pass" and stored["psap"]["state"] == "confirmed"
    # … and what the PSAP received (its multipart reader drops the document's final line break)
    assert stored["psap"]["pidf"].rstrip() == sent_pidf.decode().rstrip()

    # the customer moves the phone two floors down: PATCH, no restart, no re-bind
    moved = await asyncio.to_thread(lambda: prov.http.patch(f"/api/v1/locations/{place}",
                                                            json={"flr": "2", "room": "210"}))
    assert moved.status_code == 200
    stale = build_emergency_invite(local=phone.local, pidf=sent_pidf, callback="+15125550100", domain=DOMAIN)
    assert (await phone.call(stale, server)).status == 200  # the call still connects …
    old = server.log.get(stale.call_id)
    assert old is not None
    assert old.verdict == "fail" and old.failed_checks == ["location_matches"]  # … but the verdict says why
    assert old.differences == [{"field": "flr", "conveyed": "4", "registered": "2"},
                               {"field": "room", "conveyed": "410", "registered": "210"}]
    fresh, _ = invite_from_snapshot(prov, dev, phone)
    assert (await phone.call(fresh, server)).status == 200
    new = server.log.get(fresh.call_id)
    assert new is not None and new.verdict == "pass" and new.conveyed == new.expected

    test_call, _ = invite_from_snapshot(prov, dev, phone, ruri="sip:933@gw.voiplab.test;user=phone",
                                        to="<sip:933@gw.voiplab.test>")
    answer = await phone.call(test_call, server)
    parts = parse_multipart(answer.get("content-type") or "", answer.body)
    text = next(p.body for p in parts if p.content_type == "text/plain").decode()
    assert "North Tower, Floor 2, Room 210" in text and "+15125550100" in text and "Differences: none" in text

    await asyncio.to_thread(store.record_psap_calls, list(changes))
    verdicts = await asyncio.to_thread(lambda: prov.get("/emergency/psap-calls", verdict="fail").json())
    assert stale.call_id in [v["call_id"] for v in verdicts]
