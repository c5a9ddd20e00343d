"""Registrar workers: extra processes that take REGISTER off the main process.

One Python process uses one core, and a REGISTER exchange costs a few
hundred microseconds of it, so a registration storm (a lab's phones all
rebooting) saturates the main process long before the machine.  With
``--registrar-workers N`` the main process starts N more processes:

- Each binds the SIP UDP port too (``SO_REUSEPORT``), so its answers leave
  from the address phones know.  A BPF program steers every incoming
  datagram to the main process's socket (``gateway/reuseport.py``).
- The main process hands each UDP REGISTER to a worker chosen by Call-ID,
  so the challenge and the authenticated retry of one exchange meet the same
  worker (its nonce-count guard and its REGISTER transaction).  Everything
  else — calls, TCP and TLS, the API, records — stays in the main process.
- Every process keeps a full copy of the bindings (``gateway/replication.py``):
  a worker reports each change to the main process, which applies it and
  relays it to the other workers.  Drops ordered by provisioning (R2, a
  suspended device) are decided once, by the main process, and replicated.
- Provisioning changes reach the workers' directory snapshots over the same
  channel; R13 fingerprints come back to the main process's E911 writer.

What differs from one process: a worker's snapshot may trail a
provisioning change by the time the change takes to cross the channel, and
a nonce's replay guard is per process (a nonce answered at two workers with
the same count would pass once at each; one exchange never spans two).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from gateway.replication import (
    BINDING,
    CHANGE,
    FINGERPRINT,
    READY,
    SIP,
    Channel,
    Op,
    ReplicatedLocation,
    decode_sip,
    encode_sip,
    load,
)
from gateway.settings import Settings
from gateway.transport import Peer

log = logging.getLogger("voiplab.regworkers")

_CALL_ID = re.compile(rb"\r?\n(?:call-id|i)[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE)
_SECRET_ENV = "VOIPLAB_WORKER_NONCE_SECRET"
_CONFIG_ENV = "VOIPLAB_WORKER_CONFIG"


def worker_for(data: bytes, count: int) -> int | None:
    """Which worker a REGISTER goes to: a stable hash of its Call-ID (None if it has none).

    The header as phones and SIPp spell it is found with one `find` (about 1 µs, the regular
    expression 5 µs, and the main process runs this for every REGISTER); any other spelling
    (compact `i:`, other case, space before the colon) goes through the expression."""
    start = data.find(b"\nCall-ID:")
    if start >= 0:
        start += 9
        end = data.find(b"\n", start)
        value = data[start:end if end >= 0 else len(data)].strip()
    else:
        m = _CALL_ID.search(data)
        if m is None:
            return None
        value = m.group(1).strip()
    return zlib.crc32(value) % count


@dataclass
class Worker:
    index: int
    process: subprocess.Popen[bytes]
    channel: Channel
    ready: bool = False


class RegistrarWorkers:
    """The main process's side: spawn, dispatch, relay, stop."""

    def __init__(self, settings: Settings, secret: bytes, location: ReplicatedLocation,
                 on_local: Callable[[bytes, Peer], None],
                 on_fingerprint: Callable[[dict[str, Any]], None]) -> None:
        self.settings = settings
        self.secret = secret
        self.location = location
        self.on_local = on_local  # the main SipCore's on_message
        self.on_fingerprint = on_fingerprint
        self.workers: list[Worker] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        location.on_op = self._broadcast_op

    async def start(self, count: int, sip_bound: list[tuple[str, int]], timeout: float = 60.0) -> None:
        loop = self._loop = asyncio.get_running_loop()
        config = json.dumps({"settings": json.loads(self.settings.model_dump_json()), "sip": sip_bound})
        env = {**os.environ, _SECRET_ENV: self.secret.hex(), _CONFIG_ENV: config}
        for index in range(1, count + 1):
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            proc = subprocess.Popen(
                [sys.executable, "-m", "gateway.regworkers", "--fd", str(theirs.fileno()), "--index", str(index)],
                pass_fds=[theirs.fileno()], env=env, stdin=subprocess.DEVNULL)
            theirs.close()

            def on_frame(kind: bytes, payload: bytes, i: int = index) -> None:
                self._on_frame(self.workers[i - 1], kind, payload)

            def on_lost(i: int = index) -> None:
                w = self.workers[i - 1]
                if w.ready and not self._stopping:
                    log.error("registrar worker %d (pid %d) is gone; its REGISTERs are handled here",
                              i, w.process.pid)
                w.ready = False

            _, channel = await loop.connect_accepted_socket(functools.partial(Channel, on_frame, on_lost), ours)
            worker = Worker(index, proc, channel)
            self.workers.append(worker)
        deadline = loop.time() + timeout
        while not all(w.ready for w in self.workers):
            dead = [w for w in self.workers if w.process.poll() is not None]
            if dead:
                raise RuntimeError(f"registrar worker {dead[0].index} exited with {dead[0].process.returncode}")
            if loop.time() > deadline:
                raise RuntimeError("registrar workers did not report ready in time")
            await asyncio.sleep(0.05)
        log.info("%d registrar worker(s) ready: pids %s", count, [w.process.pid for w in self.workers])

    # -- main process, per message ------------------------------------------------------------
    def dispatch(self, data: bytes, peer: Peer) -> None:
        """The transports' callback: UDP REGISTERs to a worker, the rest to the main core."""
        if peer.proto == "udp" and data[:9] == b"REGISTER ":
            workers = self.workers
            i = worker_for(data, len(workers))
            if i is not None:
                worker = workers[i]
                if worker.ready and worker.channel.send(SIP, encode_sip(data, peer)):
                    return
        self.on_local(data, peer)

    def _on_frame(self, worker: Worker, kind: bytes, payload: bytes) -> None:
        if kind == BINDING:
            op: Op = load(payload)
            self.location.apply(op, origin=f"worker-{worker.index}")
            for other in self.workers:
                if other is not worker:
                    other.channel.send(BINDING, payload)
        elif kind == SIP:
            data, peer = decode_sip(payload)
            self.on_local(data, peer)  # not a REGISTER, received by a worker's socket
        elif kind == FINGERPRINT:
            self.on_fingerprint(load(payload))
        elif kind == READY:
            worker.ready = True

    def _broadcast_op(self, op: Op) -> None:
        for worker in self.workers:
            worker.channel.send_obj(BINDING, op)

    def broadcast_changes(self, changes: Sequence[object]) -> None:
        """ChangeBus batch subscriber (any thread): the workers' snapshots follow provisioning,
        one hop to the loop per batch (the R13 writer's)."""
        loop = self._loop
        if loop is None:
            return
        loop.call_soon_threadsafe(self._send_changes, changes)

    def _send_changes(self, changes: Sequence[object]) -> None:
        for worker in self.workers:
            for change in changes:
                worker.channel.send_obj(CHANGE, change)

    async def stop(self) -> None:
        self._stopping = True
        for worker in self.workers:
            if worker.channel.transport is not None:
                worker.channel.transport.close()
            with contextlib.suppress(ProcessLookupError):
                worker.process.send_signal(signal.SIGTERM)
        for worker in self.workers:
            try:
                await asyncio.to_thread(worker.process.wait, 10)
            except subprocess.TimeoutExpired:
                worker.process.kill()


# -- the worker process ------------------------------------------------------------------------
async def run_worker(settings: Settings, fd: int, index: int, secret: bytes, sip_bound: list[tuple[str, int]]) -> None:
    from gateway.auth import Authenticator
    from gateway.calls import CallTracker
    from gateway.clock import LoopClock, protocol_view
    from gateway.core import SipCore
    from gateway.proxy import Proxy
    from gateway.registrar import Registrar, RegistrarConfig
    from gateway.serve import _algorithms, make_identity, tune_gc, tune_switch_interval
    from gateway.sip.digest import NonceManager
    from gateway.transport import Transports
    from provisioning.db import make_engine
    from provisioning.directory import Directory

    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stopping.set)
    clock = LoopClock(loop, settings.time_scale)
    pclock = protocol_view(clock)
    engine = make_engine(settings.db)
    directory = Directory(engine)
    await asyncio.to_thread(directory.load_all)
    changes = ThreadPoolExecutor(max_workers=1, thread_name_prefix="changes")  # in order, off the loop

    channel_box: list[Channel] = []

    def send_obj(kind: bytes, obj: object) -> None:
        if channel_box:
            channel_box[0].send_obj(kind, obj)

    location = ReplicatedLocation(pclock.now, on_op=lambda op: send_obj(BINDING, op))
    auth = Authenticator(settings.domain, NonceManager(secret, settings.nonce_lifetime),
                         _algorithms(settings.digest_algorithms))
    registrar = Registrar(RegistrarConfig(min_expires=settings.min_expires, max_contacts=settings.max_contacts),
                          location, auth)
    registrar.on_fingerprint = lambda event: send_obj(FINGERPRINT, event)
    calls = CallTracker(clock.now, clock.wall, lambda record: None, node=settings.node)  # calls stay in main
    transports = Transports(loop, lambda data, peer: None, pclock)
    identity = make_identity(settings, [(h, p) for h, p in sip_bound])
    for _host, port in sip_bound:  # the ports the main process bound
        identity.ports.setdefault("udp", port)
        identity.ports.setdefault("tcp", port)
    core = SipCore(identity=identity, clock=clock, directory=directory, registrar=registrar, location=location,
                   calls=calls, send=transports.send, proxy_factory=lambda c: Proxy(c, auth))

    def on_udp(data: bytes, peer: Peer) -> None:
        if data[:9] == b"REGISTER ":
            core.on_message(data, peer)
        elif channel_box:
            channel_box[0].send(SIP, encode_sip(data, peer))  # the kernel gave us someone else's message

    transports.on_message = on_udp
    for host, port in sip_bound:
        await transports.listen_udp(host, port, reuse_port=True)

    # Changes queue here and one job on the changes thread folds everything queued by then in
    # one `apply_many`: a burst (the R13 writer's batch of first registrations) costs one
    # session and one query per run of devices, not one per change.
    queued: deque[Any] = deque()

    def apply_changes() -> None:
        batch = []
        while queued:
            batch.append(queued.popleft())
        if batch:
            directory.apply_many(batch)

    def on_frame(kind: bytes, payload: bytes) -> None:
        if kind == SIP:
            data, peer = decode_sip(payload)
            core.on_message(data, peer)
        elif kind == BINDING:
            location.apply(load(payload))
        elif kind == CHANGE:
            queued.append(load(payload))
            changes.submit(apply_changes)  # a job finding the queue empty does nothing

    sock = socket.socket(fileno=fd)
    _, channel = await loop.connect_accepted_socket(lambda: Channel(on_frame, stopping.set), sock)
    channel_box.append(channel)

    tune_gc()
    tune_switch_interval()
    channel.send(READY, b"")
    await stopping.wait()
    core.close()
    await transports.close()
    changes.shutdown(wait=False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gateway.regworkers")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--index", type=int, required=True)
    args = parser.parse_args(argv)
    config = json.loads(os.environ[_CONFIG_ENV])
    secret = bytes.fromhex(os.environ[_SECRET_ENV])
    settings = Settings(**config["settings"])
    logging.basicConfig(level=getattr(logging, settings.log_level.upper(), logging.INFO),
                        format=f"%(asctime)s %(levelname)s %(name)s[w{args.index}]: %(message)s", stream=sys.stderr)
    sip_bound = [(h, int(p)) for h, p in config["sip"]]
    try:
        import uvloop

        uvloop.run(run_worker(settings, args.fd, args.index, secret, sip_bound))
    except ImportError:  # pragma: no cover
        asyncio.run(run_worker(settings, args.fd, args.index, secret, sip_bound))


if __name__ == "__main__":
    main()
