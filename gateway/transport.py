"""asyncio glue between sockets and the gateway's sans-IO core.

Nothing here understands SIP beyond framing a TCP byte stream into messages
(``StreamFramer``); every datagram or framed message goes to one callback,
``on_message(data, peer)``, and the core answers through ``send``.  UDP and
TCP share the port, IPv4 and IPv6 alike; TLS listens on its own port.

A ``Peer`` says where a message came from and where an answer goes back: the
protocol, the address, and for stream transports the connection id, so that
responses and requests to a registered phone reuse the phone's own connection
(RFC 3261 §18.2.2, RFC 5626's flow idea without the Outbound extension).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import itertools
import logging
import socket
import ssl
from collections.abc import Callable
from typing import NamedTuple

from gateway.clock import Clock
from gateway.sip.errors import ParseError
from gateway.sip.parser import StreamFramer

log = logging.getLogger("voiplab.transport")

#: UDP socket buffers: a proxy at thousands of messages/s needs more than the default 208 KiB.
UDP_BUFFER_BYTES = 8 * 1024 * 1024


class Peer(NamedTuple):
    proto: str  # "udp" | "tcp" | "tls"
    host: str
    port: int
    conn: int = 0  # stream connection id, 0 for UDP

    @property
    def reliable(self) -> bool:
        return self.proto != "udp"


OnMessage = Callable[[bytes, Peer], None]


@functools.lru_cache(maxsize=4096)
def is_ip_literal(host: str) -> bool:
    """Whether ``host`` is an address we can send to without DNS (cached: it runs per message)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


class _UdpProtocol(asyncio.DatagramProtocol):
    __slots__ = ("_owner", "transport")

    def __init__(self, owner: Transports) -> None:
        self._owner = owner  # its on_message is read per datagram: the owner may re-point it
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's class is not asyncio's
        sock = transport.get_extra_info("socket")
        if sock is not None:
            for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                with contextlib.suppress(OSError):  # kernel refused: the defaults still work
                    sock.setsockopt(socket.SOL_SOCKET, opt, UDP_BUFFER_BYTES)

    def datagram_received(self, data: bytes, addr: tuple[str, int] | tuple[str, int, int, int]) -> None:
        if len(data) <= 4 and not data.strip():
            return  # RFC 5626 CRLF keep-alive ping over UDP: nothing to answer
        try:
            self._owner.on_message(data, Peer("udp", addr[0], addr[1]))
        except Exception:  # a bug in one message's handling must not stop the listener
            log.exception("unhandled error on datagram from %s:%s", addr[0], addr[1])

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and friends: UDP carries on, the transaction layer times out.
        log.debug("udp error: %s", exc)


class _StreamProtocol(asyncio.Protocol):
    """One TCP or TLS connection: frames messages with Content-Length."""

    def __init__(self, owner: Transports, proto: str) -> None:
        self._owner = owner
        self._proto = proto
        self._framer = StreamFramer()
        self.transport: asyncio.Transport | None = None
        self.peer: Peer | None = None
        self.last_active = owner.clock.now()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if len(self._owner._conns) >= self._owner.max_connections:
            log.warning("refusing a %s connection: %d open", self._proto, len(self._owner._conns))
            transport.close()
            return
        addr = transport.get_extra_info("peername")
        conn_id = self._owner._register_conn(self)
        self.peer = Peer(self._proto, addr[0], addr[1], conn_id)

    def data_received(self, data: bytes) -> None:
        if self.peer is None or self.transport is None:
            return  # a refused connection, closing
        self.last_active = self._owner.clock.now()
        if data == b"\r\n\r\n":
            self.transport.write(b"\r\n")  # RFC 5626 §4.4.1 keep-alive: double-CRLF ping, CRLF pong
            return
        try:
            messages = self._framer.feed(data)
        except ParseError as exc:
            # A stream cannot resynchronise after bad framing: answer (400/413) when the head was
            # readable, then close.
            log.info("closing %s %s:%s: %s", self._proto, self.peer.host, self.peer.port, exc.reason)
            if self._owner.on_stream_error is not None:
                self._owner.on_stream_error(exc, self.peer)
            self.transport.close()
            return
        for message in messages:
            try:
                self._owner.on_message(message, self.peer)
            except Exception:
                log.exception("unhandled error on message from %s", self.peer)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None:
            self._owner._unregister_conn(self.peer)

    def send(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.last_active = self._owner.clock.now()
            self.transport.write(data)


class Transports:
    """Listening sockets plus the table of open stream connections.

    Stream connections are bounded in number and closed after ``idle_lifetime``
    simulated seconds without traffic (longer than a registration, so a phone
    registered over TCP stays reachable between refreshes).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, on_message: OnMessage, clock: Clock, *,
                 max_connections: int = 4096, idle_lifetime: float = 3900.0) -> None:
        self.loop = loop
        self.on_message = on_message
        self.clock = clock
        self.max_connections = max_connections
        self.idle_lifetime = idle_lifetime
        self._udp: dict[int, asyncio.DatagramTransport] = {}  # by address family
        self._servers: list[asyncio.AbstractServer] = []
        self._conns: dict[int, _StreamProtocol] = {}
        self._conn_by_addr: dict[tuple[str, str, int], int] = {}
        self._ids = itertools.count(1)
        self._client_ssl: ssl.SSLContext | None = None
        self.listening: list[tuple[str, str, int]] = []  # (proto, host, port) actually bound
        #: called with a framing error before its stream is closed, so the core can answer it
        self.on_stream_error: Callable[[ParseError, Peer], None] | None = None

    # -- listening -----------------------------------------------------------------
    async def listen_udp(self, host: str, port: int, *, reuse_port: bool = False) -> int:
        """Bind UDP; ``reuse_port`` joins a SO_REUSEPORT group (registrar workers share the port)."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        udp_transport, _ = await self.loop.create_datagram_endpoint(
            lambda: _UdpProtocol(self), local_addr=(host, port), family=family,
            reuse_port=reuse_port or None,
        )
        bound_port: int = udp_transport.get_extra_info("sockname")[1]
        self._udp[family] = udp_transport
        self.listening.append(("udp", host, bound_port))
        return bound_port

    def udp_socket(self, host: str) -> socket.socket | None:
        """The bound UDP socket of ``host``'s address family (for socket options)."""
        udp = self._udp.get(socket.AF_INET6 if ":" in host else socket.AF_INET)
        return udp.get_extra_info("socket") if udp is not None else None

    async def listen_udp_tcp(self, host: str, port: int, *, reuse_port: bool = False) -> int:
        """Bind UDP and TCP on the same address and port; returns the port (useful when 0)."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        bound_port = await self.listen_udp(host, port, reuse_port=reuse_port)
        server = await self.loop.create_server(
            lambda: _StreamProtocol(self, "tcp"), host, bound_port, family=family, reuse_address=True
        )
        self._servers.append(server)
        self.listening.append(("tcp", host, bound_port))
        return bound_port

    async def listen_tls(self, host: str, port: int, context: ssl.SSLContext) -> int:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server = await self.loop.create_server(
            lambda: _StreamProtocol(self, "tls"), host, port, family=family, ssl=context, reuse_address=True
        )
        bound_port: int = server.sockets[0].getsockname()[1]
        self._servers.append(server)
        self.listening.append(("tls", host, bound_port))
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # lab phones present self-signed certificates
        self._client_ssl = ctx
        return bound_port

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for proto in list(self._conns.values()):
            if proto.transport is not None:
                proto.transport.close()
        for udp in self._udp.values():
            udp.close()
        for server in self._servers:
            await server.wait_closed()

    # -- connection table ---------------------------------------------------------------
    def close_idle(self) -> int:
        """Close stream connections idle longer than the lifetime; returns how many."""
        cutoff = self.clock.now() - self.idle_lifetime
        idle = [c for c in self._conns.values() if c.last_active < cutoff]
        for conn in idle:
            if conn.transport is not None:
                conn.transport.close()
        return len(idle)

    def _register_conn(self, proto: _StreamProtocol) -> int:
        conn_id = next(self._ids)
        self._conns[conn_id] = proto
        assert proto.transport is not None
        addr = proto.transport.get_extra_info("peername")
        self._conn_by_addr[(proto._proto, addr[0], addr[1])] = conn_id
        return conn_id

    def _unregister_conn(self, peer: Peer) -> None:
        self._conns.pop(peer.conn, None)
        key = (peer.proto, peer.host, peer.port)
        if self._conn_by_addr.get(key) == peer.conn:
            del self._conn_by_addr[key]

    def has_conn(self, conn_id: int) -> bool:
        return conn_id in self._conns

    # -- sending ----------------------------------------------------------------------------
    def send(self, data: bytes, peer: Peer) -> None:
        """Send one message; never blocks (stream connects and DNS run as tasks)."""
        proto = peer.proto
        if proto == "udp":
            family = socket.AF_INET6 if ":" in peer.host else socket.AF_INET
            udp = self._udp.get(family)
            if udp is None:
                log.debug("no %s UDP socket to reach %s", "IPv6" if family == socket.AF_INET6 else "IPv4", peer)
                return
            if is_ip_literal(peer.host):
                udp.sendto(data, (peer.host.strip("[]"), peer.port))
            else:
                self.loop.create_task(self._resolve_and_send_udp(udp, data, peer))
            return
        conn = self._conns.get(peer.conn) if peer.conn else None
        if conn is None:
            conn_id = self._conn_by_addr.get((proto, peer.host, peer.port))
            conn = self._conns.get(conn_id) if conn_id else None
        if conn is not None:
            conn.send(data)
            return
        self.loop.create_task(self._connect_and_send(data, peer))

    async def _resolve_and_send_udp(self, udp: asyncio.DatagramTransport, data: bytes, peer: Peer) -> None:
        try:
            infos = await self.loop.getaddrinfo(peer.host, peer.port, type=socket.SOCK_DGRAM)
        except OSError as exc:
            log.info("cannot resolve %s: %s", peer.host, exc)
            return
        for family, _, _, _, sockaddr in infos:
            target = self._udp.get(family)
            if target is not None:
                target.sendto(data, sockaddr[:2])
                return

    async def _connect_and_send(self, data: bytes, peer: Peer) -> None:
        ssl_ctx = self._client_ssl if peer.proto == "tls" else None
        if peer.proto == "tls" and ssl_ctx is None:
            log.info("no TLS configured; cannot reach %s", peer)
            return
        try:
            _, protocol = await asyncio.wait_for(
                self.loop.create_connection(
                    lambda: _StreamProtocol(self, peer.proto), peer.host.strip("[]"), peer.port, ssl=ssl_ctx
                ),
                timeout=10,
            )
        except (OSError, TimeoutError) as exc:
            log.info("cannot connect to %s:%s over %s: %s", peer.host, peer.port, peer.proto, exc)
            return
        protocol.send(data)
