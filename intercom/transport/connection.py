"""One SIP-over-WebSocket connection: frames in and out of the sans-I/O transaction layer.

The same class serves the hub and the client. Whoever owns the WebSocket feeds each received
frame to :meth:`SipConnection.receive` and reports the end with :meth:`SipConnection.lost`;
the connection writes through a :class:`FrameWriter`. Receiving is synchronous: a frame is
parsed, run through the transactions and answered in the same call, with no task switch on the
hub's hot path. Each frame is one SIP message (RFC 7118). A request that does not parse is
answered, when its method could be read, with the status its error names (400, or 505 for a SIP
version other than 2.0), a reason naming the fault and a To tag; anything else is dropped with
a log line. The connection stays up either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from ..sip import (
    ClientTransaction,
    ParseError,
    Request,
    RequestReceived,
    Response,
    ResponseReceived,
    ServerTransaction,
    TransactionError,
    TransactionLayer,
    TransactionTimedOut,
    make_response,
    parse_message,
)
from ..sip.ids import new_tag
from ..sip.transaction import Event

log = logging.getLogger(__name__)


class FrameWriter(Protocol):
    """The two WebSocket operations a SIP connection needs; neither may block."""

    def send_text(self, text: str) -> None:
        """Send one text frame (or queue it, in order, behind the frames before it)."""
        ...

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake once the frames already sent have gone out."""
        ...


class ConnectionClosed(Exception):
    """The WebSocket closed while a request was waiting for its answer."""


EventHandler = Callable[["SipConnection", Event], Awaitable[None] | None]


class SipConnection:
    """Runs a :class:`TransactionLayer` over one WebSocket.

    Requests from the peer and responses that no waiting :meth:`request` claims go to
    ``handler``. A handler that returns an awaitable runs as a task of its own, so a slow
    handler (one that forwards a call and waits) never holds up the frames behind it.
    """

    def __init__(self, writer: FrameWriter, handler: EventHandler, name: str = "") -> None:
        self.name = name
        self._writer = writer
        self._handler = handler
        self._layer = TransactionLayer()
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._waiting: dict[ClientTransaction, asyncio.Future[Response]] = {}
        self._provisional: dict[ClientTransaction, Callable[[Response], None]] = {}
        self._handler_tasks: set[asyncio.Task[None]] = set()
        self.closed = False

    def receive(self, frame: str | bytes) -> None:
        """Handle one received frame."""
        if self.closed:
            return
        try:
            message = parse_message(frame)
        except ParseError as exc:
            self._answer_parse_error(exc)
            return
        try:
            events = self._layer.receive(message, self._loop.time())
        except TransactionError as exc:  # e.g. a 180 after the 200: the peer is confused, we are not
            log.info("%s: ignored %s", self.name, exc)
            return
        self._flush()
        for event in events:
            self._dispatch(event)

    def lost(self) -> None:
        """The WebSocket is gone: fail every request still waiting and stop the timers."""
        if self.closed:
            return
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(ConnectionClosed(f"{self.name}: connection closed"))
        self._waiting.clear()
        self._provisional.clear()

    def _answer_parse_error(self, error: ParseError) -> None:
        if error.request is None:
            log.warning("%s: dropped an unreadable frame: %s", self.name, error)
            return
        status = error.status_code
        log.info("%s: %d to a malformed %s: %s", self.name, status, error.request.method, error)
        if error.request.method != "ACK":
            response = make_response(error.request, status, to_tag=new_tag())
            response.reason = f"{response.reason} ({error})".replace("\r", " ").replace("\n", " ")[:200]
            self._write(response)

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, ResponseReceived) and event.transaction in self._waiting:
            transaction = event.transaction
            if event.response.is_provisional:
                callback = self._provisional.get(transaction)
                if callback is not None:
                    callback(event.response)
                return
            future = self._waiting.pop(transaction)
            self._provisional.pop(transaction, None)
            if not future.done():
                future.set_result(event.response)
            return
        if isinstance(event, TransactionTimedOut) and event.transaction in self._waiting:
            future = self._waiting.pop(event.transaction)  # type: ignore[arg-type]
            if not future.done():
                future.set_exception(TimeoutError(f"no answer to {event.transaction.method}"))
            return
        try:
            result = self._handler(self, event)
        except Exception:
            self._handler_failed(event)
            return
        if inspect.isawaitable(result):
            task = self._loop.create_task(self._finish_handler(event, result))
            self._handler_tasks.add(task)
            task.add_done_callback(self._handler_tasks.discard)

    async def _finish_handler(self, event: Event, result: Awaitable[None]) -> None:
        try:
            await result
        except Exception:
            self._handler_failed(event)

    def _handler_failed(self, event: Event) -> None:
        log.exception("%s: handler failed on %r", self.name, event)
        if isinstance(event, RequestReceived) and event.transaction is not None and not self.closed:
            with contextlib.suppress(TransactionError):  # the handler had answered before failing
                self.send_response(event.transaction, make_response(event.request, 500))

    async def request(self, request: Request, on_provisional: Callable[[Response], None] | None = None) -> Response:
        """Send a request in a new client transaction and wait for its final response.

        Raises :class:`TimeoutError` after 64*T1 without one, :class:`ConnectionClosed`
        if the socket closes first.
        """
        if self.closed:
            raise ConnectionClosed(f"{self.name}: connection closed")
        transaction = self._layer.send_request(request, self._loop.time())
        assert transaction is not None, "ACK has no response: use send()"
        future: asyncio.Future[Response] = self._loop.create_future()
        self._waiting[transaction] = future
        if on_provisional is not None:
            self._provisional[transaction] = on_provisional
        self._flush()
        return await future

    def send(self, message: Request | Response) -> None:
        """Send a message outside any transaction (an ACK, a stateless answer)."""
        if isinstance(message, Request):
            self._layer.send_request(message, self._loop.time())
            self._flush()
        else:
            self._write(message)

    def send_response(self, transaction: ServerTransaction, response: Response) -> None:
        self._layer.send_response(transaction, response, self._loop.time())
        self._flush()

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the WebSocket after what has been sent; :meth:`lost` follows when it is gone."""
        if not self.closed:
            self._writer.close(code, reason)

    def _flush(self) -> None:
        for message in self._layer.data_to_send():
            self._write(message)
        self._schedule_timer()

    def _write(self, message: Request | Response) -> None:
        if self.closed:
            return
        try:
            self._writer.send_text(message.text())
        except Exception as exc:  # the peer vanished mid-send; lost() follows
            log.debug("%s: send failed: %s", self.name, exc)

    def _schedule_timer(self) -> None:
        deadline = self._layer.next_deadline()
        if self._timer is not None:
            if deadline is not None and self._timer.when() == deadline:
                return
            self._timer.cancel()
            self._timer = None
        if deadline is not None and not self.closed:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        events = self._layer.handle_timeouts(self._loop.time())
        self._flush()
        for event in events:
            self._dispatch(event)


__all__ = ["ConnectionClosed", "EventHandler", "FrameWriter", "SipConnection"]
