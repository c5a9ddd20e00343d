"""Steer every datagram of a SO_REUSEPORT group to its first socket (Linux cBPF).

Registrar workers bind the gateway's UDP port with ``SO_REUSEPORT`` only so
that their answers leave from the address phones registered with.  Left to
itself the kernel would spread incoming datagrams over the group by a hash of
the 4-tuple, which puts one SIPp socket (or one phone) wholly on one process
and leaves the main process without the calls it owns.  A one-instruction
classic BPF program (``ret #0``) attached to the group sends everything to
socket 0, the main process's, which then hands REGISTERs to the workers
itself, balanced by Call-ID.

Without the program (another kernel, or the option refused) the group still
works: a worker forwards what is not a REGISTER to the main process.
"""

from __future__ import annotations

import ctypes
import logging
import socket
import struct

log = logging.getLogger("voiplab.reuseport")

SO_ATTACH_REUSEPORT_CBPF = 51  # linux/asm-generic/socket.h
_BPF_RET_K = 0x06  # BPF_RET | BPF_K


def steer_to_first(sock: socket.socket) -> bool:
    """Attach ``ret #0`` to ``sock``'s reuseport group; False when the kernel refuses it."""
    program = (ctypes.c_ubyte * 8).from_buffer_copy(struct.pack("HBBI", _BPF_RET_K, 0, 0, 0))
    fprog = struct.pack("@HP", 1, ctypes.addressof(program))  # struct sock_fprog, native alignment
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)
    except OSError as exc:
        log.warning("cannot steer the SO_REUSEPORT group to the main process (%s); "
                    "registrar workers will forward what they receive instead", exc)
        return False
    return True
