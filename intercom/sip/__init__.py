"""Sans-I/O SIP: messages, URIs and headers, transactions, dialogs. No asyncio, no sockets."""

from .address import Address, CSeq, SipUri, Via
from .dialog import Dialog
from .errors import (
    BadContentLength,
    BadHeader,
    BadStartLine,
    BadUri,
    DialogError,
    MessageTooLarge,
    MissingHeader,
    ParseError,
    SipError,
    TooManyHeaders,
    TransactionError,
    UnsupportedVersion,
)
from .headers import Headers, parse_decimal
from .message import MAX_HEADERS, MAX_MESSAGE_SIZE, Request, Response, make_cancel, make_response, parse_message
from .transaction import (
    ClientTransaction,
    RequestReceived,
    ResponseReceived,
    ServerTransaction,
    State,
    TransactionLayer,
    TransactionTimedOut,
)

__all__ = [
    "MAX_HEADERS",
    "MAX_MESSAGE_SIZE",
    "Address",
    "BadContentLength",
    "BadHeader",
    "BadStartLine",
    "BadUri",
    "ClientTransaction",
    "CSeq",
    "Dialog",
    "DialogError",
    "Headers",
    "MessageTooLarge",
    "MissingHeader",
    "ParseError",
    "Request",
    "RequestReceived",
    "Response",
    "ResponseReceived",
    "ServerTransaction",
    "SipError",
    "SipUri",
    "State",
    "TooManyHeaders",
    "TransactionError",
    "TransactionLayer",
    "TransactionTimedOut",
    "UnsupportedVersion",
    "Via",
    "make_cancel",
    "make_response",
    "parse_decimal",
    "parse_message",
]
