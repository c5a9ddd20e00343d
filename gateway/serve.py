"""Composition root of ``voiplab serve``: one asyncio loop, SIP and HTTP together.

Everything stateful is built here and passed in; no module keeps state of its
own.  Order matters: the database and the directory snapshot come first (so
the first REGISTER already sees provisioning data), then the SIP listeners,
then the HTTP API (so ``/healthz`` answering means SIP is up too).  Shutdown
runs the other way and ends with the call-record queue drained.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import secrets
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import uvicorn
from sqlmodel import Session

from gateway.auth import Authenticator
from gateway.builtin import DEFAULT_CONFERENCE_MAX, BuiltinPeers
from gateway.calls import CallTracker
from gateway.clock import LoopClock, protocol_view
from gateway.core import Identity, Limits, SipCore
from gateway.e911_outbox import EmergencyOutbox
from gateway.lab import GatewayLab
from gateway.live import GatewayLiveView
from gateway.location import LocationService
from gateway.outbox import BatchWriter
from gateway.policy import FloodGuard
from gateway.proxy import Proxy
from gateway.psap.log import PsapLog
from gateway.registrar import Registrar, RegistrarConfig
from gateway.regworkers import RegistrarWorkers
from gateway.replication import ReplicatedLocation
from gateway.reuseport import steer_to_first
from gateway.settings import Settings
from gateway.sip.digest import Algorithm, NonceManager
from gateway.tls import ensure_self_signed, server_context
from gateway.transport import Transports
from provisioning.api import ProvisioningContext, create_app
from provisioning.cdrs import CdrStore
from provisioning.db import init_db, make_engine
from provisioning.demo import DemoCredential, seed_demo
from provisioning.directory import Directory
from provisioning.e911_store import E911Store
from provisioning.events import Change, ChangeBus
from provisioning.notifier import Notifier
from provisioning.plans import load_plans
from provisioning.secrets import SecretBox

log = logging.getLogger("voiplab")


class EmbeddedHttp(uvicorn.Server):
    """uvicorn sharing our loop: signals are ours (uvicorn would re-raise them after its own exit)."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]
        return contextlib.nullcontext()


@dataclass(slots=True)
class Running:
    """Handles tests and the CLI need on a running gateway."""

    core: SipCore
    transports: Transports
    api_port: int
    sip_ports: dict[str, int]
    token: str
    writers: dict[str, BatchWriter]  # call records, emergency records, PSAP verdicts, fingerprints
    http: uvicorn.Server
    http_task: asyncio.Task[None]
    peers: BuiltinPeers
    notifier: Notifier
    workers: RegistrarWorkers | None = None


def _algorithms(names: list[str]) -> tuple[Algorithm, ...]:
    table = {"MD5": Algorithm.MD5, "SHA-256": Algorithm.SHA256, "SHA256": Algorithm.SHA256}
    try:
        return tuple(table[n.upper()] for n in names)
    except KeyError as exc:
        raise SystemExit(f"unknown digest algorithm {exc.args[0]!r}; use MD5 and/or SHA-256") from None


WILDCARDS = ("0.0.0.0", "::")


def make_identity(settings: Settings, sip_addrs: list[tuple[str, int]]) -> Identity:
    """Which hosts mean "this gateway", and what to write into Via and Record-Route per family.

    A wildcard bind has no address a phone could route back to, so it needs ``--advertise``.
    """
    hosts = {settings.domain.lower()}
    v4 = next((h for h, _ in sip_addrs if ":" not in h), None)
    v6 = next((h for h, _ in sip_addrs if ":" in h), None)
    if settings.advertise:
        adv = settings.advertise.strip("[]")
        if ":" in adv:
            v6 = adv
        else:
            v4 = adv
    for host in (v4, v6):
        if host in WILDCARDS:
            raise SystemExit(f"--sip {host} listens on every address: say which one phones reach with "
                             "--advertise HOST")
    for host, _ in sip_addrs:
        hosts.add(host.lower())
    hosts.update(h.lower() for h in (v4, v6) if h)
    if hosts & {"127.0.0.1", "localhost"}:
        hosts.update({"localhost", "127.0.0.1"})
    advertise6 = f"[{v6}]" if v6 else None
    return Identity(domain=settings.domain, hosts=hosts, ports={},
                    advertise=v4 or advertise6 or settings.domain, advertise6=advertise6)


#: Call records and R13 fingerprints are not urgent (a record shows in /cdrs, a move is flagged,
#: 0.1 s later) but come in a steady trickle under load, and a transaction costs the writer
#: thread (which shares the GIL with the SIP loop) about a millisecond however few rows it
#: writes. Lingering gathers a trickle into a few transactions:
#: - `bench.inproc --scenario first-registration`: writer CPU 648 → 102 µs per first REGISTER;
#: - py-spy at a steady 300 calls/s: the CDR writer took a third of the main process's samples,
#:   in batches of one or two records.
WRITER_LINGER = 0.1


async def start(settings: Settings, *, announce: Callable[[str], None] = print) -> Running:
    loop = asyncio.get_running_loop()
    clock = LoopClock(loop, settings.time_scale)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.db)
    init_db(engine)
    bus = ChangeBus()
    directory = Directory(engine)
    await asyncio.to_thread(directory.load_all)
    bus.subscribe_many(directory.apply_many)

    wall: Callable[[], datetime] = clock.wall
    cdr_store = CdrStore(engine)
    cdr_writer = BatchWriter(cdr_store.write_many, linger=WRITER_LINGER)

    sip_addrs = settings.sip_addresses()
    identity = make_identity(settings, sip_addrs)
    advertise = identity.advertise
    workers_wanted = settings.registrar_workers
    # with registrar workers every process holds a replica of the bindings (gateway/replication.py)
    location = ReplicatedLocation(protocol_view(clock).now) if workers_wanted else LocationService()
    plans = load_plans()
    guard = FloodGuard(window=settings.flood_window, max_per_source=settings.flood_per_line,
                       max_per_callee=settings.flood_per_callee, ban_seconds=settings.flood_ban_seconds)
    nonce_secret = secrets.token_bytes(32)  # shared with registrar workers: a nonce is valid in any process
    nonces = NonceManager(nonce_secret, settings.nonce_lifetime)
    auth = Authenticator(settings.domain, nonces, _algorithms(settings.digest_algorithms))
    registrar = Registrar(RegistrarConfig(min_expires=settings.min_expires, max_contacts=settings.max_contacts),
                          location, auth)
    calls = CallTracker(clock.now, wall, cdr_writer.submit, node=settings.node)

    peers_host = sip_addrs[0][0] if sip_addrs[0][0] not in WILDCARDS else advertise.strip("[]")
    e911_store = E911Store(engine, bus=bus)
    writers = {
        "cdr": cdr_writer,
        "emergency": BatchWriter(e911_store.record_emergency_calls, name="e911-calls"),
        "psap": BatchWriter(e911_store.record_psap_calls, name="psap-calls"),
        "fingerprints": BatchWriter(e911_store.record_registrations, name="fingerprints",
                                    linger=WRITER_LINGER),
    }
    notifier = Notifier(engine, now=wall)
    psap_log = PsapLog(on_change=lambda call: writers["psap"].submit(call.to_dict()))
    # the built-in peers are SIP user agents like the phones: they run on protocol (real) time
    conference_caps = [p.conference_max for p in plans if p.conference_max]
    peers = await BuiltinPeers.start(peers_host, protocol_view(clock), psap_log=psap_log,
                                     conference_max=max(conference_caps, default=DEFAULT_CONFERENCE_MAX),
                                     psap_lookup=lambda uri: directory.snapshot.registered_location(uri))
    routes = peers.routes()

    transports = Transports(loop, lambda data, peer: None, protocol_view(clock))  # core first, then re-pointed
    core = SipCore(identity=identity, clock=clock, directory=directory, registrar=registrar,
                   location=location, calls=calls, send=transports.send,
                   proxy_factory=lambda c: Proxy(c, auth, plans=plans, guard=guard, routes=routes),
                   limits=Limits(max_call=settings.dialog_timeout))
    transports.on_message = core.on_message
    core.proxy.on_emergency = EmergencyOutbox(directory, writers["emergency"], notifier).on_emergency
    registrar.on_fingerprint = writers["fingerprints"].submit
    transports.on_stream_error = core.answer_parse_error

    sip_bound: list[tuple[str, int]] = []
    for host, port in sip_addrs:
        bound = await transports.listen_udp_tcp(host, port, reuse_port=bool(workers_wanted))
        sip_bound.append((host, bound))
        identity.ports.setdefault("udp", bound)
        identity.ports.setdefault("tcp", bound)
        udp_sock = transports.udp_socket(host)
        if workers_wanted and udp_sock is not None:
            steer_to_first(udp_sock)
    workers: RegistrarWorkers | None = None
    if workers_wanted:
        assert isinstance(location, ReplicatedLocation)
        workers = RegistrarWorkers(settings, nonce_secret, location, core.on_message, writers["fingerprints"].submit)
        await workers.start(workers_wanted, sip_bound)
        transports.on_message = workers.dispatch
        bus.subscribe_many(workers.broadcast_changes)
    if settings.tls:
        if settings.tls_cert and settings.tls_key:
            cert, key = settings.tls_cert, settings.tls_key
        else:
            cert, key = ensure_self_signed(settings.data_dir, [advertise, settings.domain])
        tls_host = sip_addrs[0][0]
        tls_port = settings.tls_port if settings.tls_port is not None else identity.ports["udp"] + 1
        identity.ports["tls"] = await transports.listen_tls(tls_host, tls_port, server_context(cert, key))
    def drop_bindings(changes: Sequence[Change]) -> None:  # any thread: hop to the loop once per batch
        loop.call_soon_threadsafe(registrar.on_changes, changes, directory.snapshot, core.clock.now())

    bus.subscribe_many(drop_bindings)

    def close_idle_connections() -> None:
        transports.close_idle()
        core.clock.call_later(60.0, close_idle_connections)

    core.clock.call_later(60.0, close_idle_connections)

    token = settings.api_token or secrets.token_urlsafe(24)
    live = GatewayLiveView(core)
    ctx = ProvisioningContext(engine=engine, api_token=token, sip_domain=settings.domain, now=wall, bus=bus,
                              live=live, plans=plans, lab=GatewayLab(peers, core.proxy.counters, core.clock, peers.psap,
                                             time_scale=clock.scale),
                              secrets=SecretBox.from_file(settings.data_dir / "secret.key"),
                              sip_server=advertise, sip_ports=dict(identity.ports))
    app = create_app(ctx)
    api_host, api_port = settings.api_address()
    config = uvicorn.Config(app, host=api_host, port=api_port, log_level="warning", loop="none",
                            lifespan="off", access_log=False)
    http = EmbeddedHttp(config)
    http_task = loop.create_task(http.serve())
    while not http.started:
        if http_task.done():
            http_task.result()  # raises the bind error
            raise SystemExit("HTTP API failed to start")
        await asyncio.sleep(0.02)
    bound_api = http.servers[0].sockets[0].getsockname()[1] if http.servers else api_port

    tune_gc()
    tune_switch_interval()
    running = Running(core, transports, bound_api, dict(identity.ports), token, writers, http, http_task,
                      peers, notifier, workers)
    listening = ", ".join(f"{p}:{h}:{port}" for p, h, port in transports.listening)
    announce(f"voiplab ready: SIP {listening} | API http://{api_host}:{bound_api} | domain {settings.domain}"
             f" | time-scale {settings.time_scale}")
    if settings.api_token is None:
        announce(f"API token (generated; set VOIPLAB_API_TOKEN to choose one): {token}")
    if settings.demo:
        def _seed() -> list[DemoCredential]:
            with Session(engine) as session:
                return seed_demo(session, wall, settings.domain, bus=bus)

        demo = await asyncio.to_thread(_seed)
        announce(format_demo(demo, advertise, identity.ports["udp"], settings.domain))
    return running


GC_THRESHOLDS = (1000, 5, 1000)


def tune_gc() -> None:
    """Keep the cyclic collector's pauses short on the SIP hot path.

    Everything built at start (directory snapshot, plans, schemas, app) is
    frozen out of the collector's view.  Per-message garbage is freed by
    reference counting (the core breaks its own cycles), but what lives on
    (transactions in Timer J, bindings, dialogs) is young for a while and is
    scanned by every generation-0 pass: with a threshold of 50,000 each pass
    took 9-11 ms, which was the p99 of the half-load latency probe.  Small
    young generations and frequent passes cost the same in total and pause
    for about a millisecond (``python -m bench.inproc --scenario call
    --gc-pauses``, 5,000 calls: 50,000/20/50 → 16 gen-0 passes of 8-10 ms;
    1,000/5/1,000 → gen-0 max 0.3 ms, gen-1 max 1.2 ms, same 135 ms in all).
    A full (gen-2) pass over everything long-lived still comes, rarely (after
    1,000 gen-1 passes and CPython's 25 % rule), and with 1,000/5/100 one took
    221 ms in that run: hence the high last threshold.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


SWITCH_INTERVAL_S = 0.0005


def tune_switch_interval() -> None:
    """Hand the GIL back to the SIP loop within 0.5 ms instead of CPython's 5 ms.

    The loop shares the interpreter with threads that do real Python work: the R13 writer
    (fingerprints into the database), the directory applying each change, the CDR writer and
    the notifier. When the loop waits in epoll it drops the GIL, and to handle the next
    datagram it must wait for a busy thread to reach its switch interval: the convoy effect,
    up to 5 ms per wake-up. With 100,000 lines registering for the first time at 1,000/s
    (every device writes its network fingerprint and changes the directory) replies fell
    more than 500 ms behind, SIPp retransmitted the first REGISTER, got a 401 where it
    expected a 200 and failed the call: 1,844 of 25,000 exchanges passed. At 0.5 ms all
    25,000 passed, same load (docs/benchmarks.md, "first registrations").
    """
    sys.setswitchinterval(SWITCH_INTERVAL_S)


def format_demo(creds: list[DemoCredential], host: str, port: int, domain: str) -> str:
    """The exact settings to type into a softphone, one block per demo line."""
    lines = ["", "Demo account ready. Point two softphones at this gateway:"]
    for c in creds:
        lines += [
            f"  {c.display_name} (extension {c.extension})",
            f"    SIP server / registrar : {host}:{port} (UDP or TCP)",
            f"    domain / realm         : {domain}",
            f"    username / auth user   : {c.sip_username}",
            f"    password               : {c.sip_password}",
        ]
    if len(creds) >= 2:
        lines.append(f"  Then dial {creds[1].extension} from {creds[0].extension} (or the other way round).")
    lines.append("  (Passwords are shown once; the next start with --demo issues new ones.)")
    return "\n".join(lines)


async def stop(running: Running) -> None:
    """Stop HTTP, stop SIP, close live calls, then drain the call-record queue."""
    running.http.should_exit = True
    with contextlib.suppress(Exception):
        await asyncio.wait_for(running.http_task, 10)
    if running.workers is not None:
        await running.workers.stop()
    await running.transports.close()
    await running.peers.close()
    running.core.close()
    running.core.calls.shutdown()
    for writer in running.writers.values():
        await asyncio.to_thread(writer.close)
    await asyncio.to_thread(running.notifier.close)


async def serve_forever(settings: Settings) -> None:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stopping.set)
    running = await start(settings)
    try:
        await stopping.wait()
        log.info("shutting down")
    finally:
        await stop(running)


def run(settings: Settings) -> None:
    logging.basicConfig(level=getattr(logging, settings.log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # migrations are routine at start
    try:
        import uvloop

        uvloop.run(serve_forever(settings))
    except ImportError:  # pragma: no cover - uvloop is a dependency where available
        asyncio.run(serve_forever(settings))
