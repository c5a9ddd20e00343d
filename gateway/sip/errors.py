"""Errors of the sans-IO SIP layer.

A :class:`SipError` is meant to become an answer on the wire: ``status`` and
``reason`` are what the transport sends back (``SIP/2.0 400 Malformed To
header``), so the reason is a short phrase naming what was wrong, never a
traceback or a sentence with the status code in it.

When the parser fails on a message whose Via, From, To, Call-ID and CSeq it
could still read, it attaches that half-parsed message as ``partial`` so the
gateway can build the 400 with :func:`gateway.sip.parser.build_response`;
without ``partial`` there is nobody to answer and the gateway drops the bytes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.sip.message import Request, Response

__all__ = ["ParseError", "SipError"]


class SipError(Exception):
    """A failure that maps to a SIP status code and reason phrase."""

    status: int
    reason: str
    partial: Request | Response | None

    def __init__(
        self,
        reason: str | int = "Bad Request",
        status: int | str = 400,
        partial: Request | Response | None = None,
    ) -> None:
        # Accept both ParseError("Malformed To header", 400) and
        # ParseError(400, "Malformed To header"): callers in other modules
        # were written against the attribute list of the contract only.
        if isinstance(reason, int) and isinstance(status, str):
            reason, status = status, reason
        if not isinstance(reason, str) or not isinstance(status, int):
            raise TypeError("SipError(reason: str, status: int = 400, partial=None)")
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.partial = partial

    def __str__(self) -> str:
        return f"{self.status} {self.reason}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason!r}, {self.status})"


class ParseError(SipError):
    """Bytes that are not a well-formed SIP message (or a malformed value).

    Status 400 unless the parser knows better: 505 for a SIP version other
    than 2.0, 413 for an oversized message, 416 for an unsupported scheme.
    """
