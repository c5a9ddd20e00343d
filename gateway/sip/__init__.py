"""Sans-IO SIP: message model, parser, URI grammar, digest auth, transactions.

Pure code (bytes in, objects and bytes out; no asyncio, no database) that the
transports, registrar and proxy in ``gateway/`` are built on. The contract is
``docs/design/sip-api.md``.
"""

from gateway.sip.errors import ParseError, SipError
from gateway.sip.headers import (
    COMPACT,
    CSeq,
    Via,
    header_key,
    parse_cseq,
    parse_params,
    parse_via,
)
from gateway.sip.message import Message, Request, Response
from gateway.sip.parser import (
    MAX_BODY,
    MAX_HEADER_BYTES,
    MAX_MESSAGE_SIZE,
    StreamFramer,
    build_response,
    parse_message,
    validate_for_proxy,
)
from gateway.sip.uri import (
    URI,
    AbsoluteURI,
    NameAddr,
    SipURI,
    parse_name_addr,
    parse_uri,
    split_commas,
)

__all__ = [
    "COMPACT",
    "MAX_BODY",
    "MAX_HEADER_BYTES",
    "MAX_MESSAGE_SIZE",
    "URI",
    "AbsoluteURI",
    "CSeq",
    "Message",
    "NameAddr",
    "ParseError",
    "Request",
    "Response",
    "SipError",
    "SipURI",
    "StreamFramer",
    "Via",
    "build_response",
    "header_key",
    "parse_cseq",
    "parse_message",
    "parse_name_addr",
    "parse_params",
    "parse_uri",
    "parse_via",
    "split_commas",
    "validate_for_proxy",
]
