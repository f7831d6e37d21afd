"""The SDK's ``Client``: one registration with a hub, kept alive for as long as the app wants.

It follows the published browser client step by step (PROTOCOL.md sections 1 and 2):

* ``setup(jwt)`` opens a WebSocket and REGISTERs; status ``connecting`` then ``connected``.
* Before the registration expires it calls ``refresh_token()`` and re-REGISTERs with the new
  token on the same socket.
* 403: wait 5 s, ``refresh_token()``, retry on a new WebSocket; after 5 refusals, status
  ``error`` and a :class:`ForbiddenError`. 406: :class:`NotAcceptableError` at once. Any
  other final error: :class:`InternalError`. After an error the status ends ``offline``.
* An unexpected close: status ``connecting``, reconnect with back-off (2 s doubling to 30 s,
  with jitter), then ``connected`` again. A hub that is down at start-up is waited for the
  same way.
* ``destroy()`` silences the calls' tones, un-REGISTERs, closes the socket and ends ``offline``.

Over wss the hub is trusted by the system's CAs, by ``ssl_context``, or by its certificate's
SHA-256 fingerprint (``tls_fingerprint``, :mod:`.pinning`). A certificate not trusted is
:class:`CertificateError` at once, not retried: nothing is sent to that peer.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import replace

from aiortc import RTCPeerConnection
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidHandshake, InvalidURI

from ..auth.certificates import normalise_fingerprint
from ..media import IceServer, MediaPolicy, MutableSource, new_peer_connection
from ..sip import Request, RequestReceived, Response, ServerTransaction, make_response, parse_decimal
from ..sip.door import UNLOCK_CONTENT_TYPE, asserted_source
from ..sip.headers import content_type
from ..sip.transaction import Event
from ..transport import ClientSocket, ConnectionClosed, SipConnection
from .call import Call
from .errors import CertificateError, ClientError, ForbiddenError, InternalError, NotAcceptableError
from .events import EventTarget
from .incoming import IncomingCall
from .invite import build_invite, build_message
from .media import CallAudio
from .pinning import pinned_connection, unverified_context
from .progress_tones import ProgressTones
from .registration import ALLOW, REQUESTED_EXPIRES, RegistrationState, refresh_delay, turn_servers
from .status import ClientStatus

log = logging.getLogger(__name__)

TokenSource = Callable[[], Awaitable[str] | str]
MAX_FRAME_SIZE = 256 * 1024


def reconnect_delay(attempt: int, minimum: float, maximum: float, rng: random.Random | None = None) -> float:
    """Back-off before reconnect ``attempt`` (0-based): doubling from ``minimum``, capped at
    ``maximum``, stretched by up to 25 % so that units cut off together do not return together."""
    base = min(maximum, minimum * 2 ** min(attempt, 32))
    return min(maximum, base * (rng or random).uniform(1.0, 1.25))


class _Refused(Exception):
    """The hub answered a REGISTER with a final error, or with a 200 we cannot use."""

    def __init__(self, response: Response, error: ClientError | None = None) -> None:
        super().__init__(f"{response.status_code} {response.reason}")
        self.response = response
        self.error = error


class Client(EventTarget):
    """A connection to a hub. Events: ``status`` (a :class:`ClientStatus`), ``error`` (a
    :class:`ClientError`); ``incoming`` and ``canceled`` arrive with calls.

    ``tls_fingerprint`` (``AB:CD:...``, 32 bytes): trust the hub whose certificate has this
    SHA-256 fingerprint, and no other, whatever CAs and names say; wss only, and not with
    ``ssl_context``."""

    forbidden_retry_delay = 5.0
    forbidden_attempts = 5
    reconnect_delay_min = 2.0
    reconnect_delay_max = 30.0
    unregister_timeout = 2.0

    def __init__(
        self,
        *,
        host: str = "webrtc.messagebird.com",
        refresh_token: TokenSource | None = None,
        secure: bool = True,
        ssl_context: ssl.SSLContext | None = None,
        instance_id: str | None = None,
        audio: CallAudio | None = None,
        tls_fingerprint: str | None = None,
    ) -> None:
        if refresh_token is None or not callable(refresh_token):
            raise TypeError("Client needs refresh_token: a function returning a fresh JWT")
        self._pin = None if tls_fingerprint is None else normalise_fingerprint(tls_fingerprint)
        if self._pin is not None:
            if not secure or ssl_context is not None:
                raise ValueError("tls_fingerprint pins a wss hub's certificate: not with secure=False or ssl_context")
            ssl_context = unverified_context()
        super().__init__()
        self.host = host
        self.secure = secure
        self._refresh_token = refresh_token
        self._ssl_context = ssl_context
        self._registration = RegistrationState(host)
        if instance_id is not None:
            self._registration.instance_id = instance_id
        self._status = ClientStatus.OFFLINE
        self._token: str | None = None
        self._runner: asyncio.Task[None] | None = None
        self._connection: SipConnection | None = None
        self._registered = False
        self._outcome: asyncio.Future[None] | None = None
        self._forbidden_count = 0
        self._reconnect_count = 0
        self.audio = audio or CallAudio()
        self._turn: list[IceServer] = []
        self._calls: dict[str, Call] = {}
        self._incoming: dict[str, IncomingCall] = {}
        self._call_tasks: set[asyncio.Task[None]] = set()
        self._tones = ProgressTones()

    @property
    def status(self) -> ClientStatus:
        return self._status

    @property
    def url(self) -> str:
        return f"{'wss' if self.secure else 'ws'}://{self.host}/"

    async def setup(self, *, jwt: str) -> None:
        """Connect and register; returns once ``connected``.

        Raises the same :class:`ClientError` the ``error`` event carries when registration
        fails for good. While the hub cannot be reached it keeps trying: wrap the call in
        :func:`asyncio.wait_for` to bound the wait.
        """
        if self._runner is not None and not self._runner.done():
            if self._status is not ClientStatus.OFFLINE:
                raise RuntimeError("client is already set up: call destroy() first")
            await self._runner  # a failed run, still closing its socket
        self._token = jwt
        self._forbidden_count = self._reconnect_count = 0
        self._outcome = asyncio.get_running_loop().create_future()
        self._set_status(ClientStatus.CONNECTING)
        self._runner = asyncio.create_task(self._run(), name=f"intercom-client-{self.host}")
        await asyncio.shield(self._outcome)

    async def destroy(self) -> None:
        """Hang up every call, un-register, close the WebSocket, and end ``offline``."""
        runner, self._runner = self._runner, None
        tones, self._tones = self._tones, ProgressTones()  # the calls of this set-up go quiet
        await tones.close()
        for incoming in list(self._incoming.values()):
            incoming.reject()
        await asyncio.gather(*(call.disconnect() for call in list(self._calls.values())))
        connection = self._connection
        if connection is not None and self._registered and not connection.closed and self._token:
            with contextlib.suppress(TimeoutError, ConnectionClosed, OSError):
                async with asyncio.timeout(self.unregister_timeout):
                    await connection.request(self._registration.build(self._token, expires=0))
        self._registered = False
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        if self._outcome is not None and not self._outcome.done():
            self._outcome.cancel()
        self._set_status(ClientStatus.OFFLINE)

    # -- the connection loop -------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                socket, connection = await self._connect()
            except CertificateError as exc:
                self._fail(exc)
                return
            except ssl.SSLCertVerificationError as exc:
                self._fail(CertificateError(f"the hub's certificate is not trusted: {exc.verify_message}"))
                return
            except (OSError, TimeoutError, InvalidHandshake) as exc:
                log.info("cannot reach %s: %s", self.url, exc)
                await self._reconnect_pause()
                continue
            except InvalidURI as exc:
                self._fail(InternalError(f"bad hub address {self.url}: {exc}"))
                return
            reader = asyncio.create_task(socket.run(connection))
            try:
                await self._keep_registered(connection, reader)
            except _Refused as refused:
                if not await self._after_refusal(refused):
                    return
                continue
            finally:
                self._registered = False
                self._connection = None
                connection.close()
                await reader
                await self._calls_lost()
            log.warning("connection to %s lost; reconnecting", self.url)
            self._set_status(ClientStatus.CONNECTING)
            await self._reconnect_pause()

    async def _connect(self) -> tuple[ClientSocket, SipConnection]:
        websocket = await connect(
            self.url,
            subprotocols=["sip"],  # type: ignore[list-item]
            ssl=(self._ssl_context or True) if self.secure else None,  # True: the system's CAs
            create_connection=pinned_connection(self._pin) if self._pin is not None else None,
            max_size=MAX_FRAME_SIZE,
            open_timeout=10,
        )
        if websocket.subprotocol != "sip":
            await websocket.close()
            raise InvalidHandshake(f"{self.url} did not accept subprotocol 'sip'")
        socket = ClientSocket(websocket)
        connection = SipConnection(socket, self._on_sip_event, name=self.url)
        self._connection = connection
        return socket, connection

    async def _keep_registered(self, connection: SipConnection, reader: asyncio.Task[None]) -> None:
        """REGISTER, then refresh before expiry, until the socket closes (returns) or a refusal (raises)."""
        expires = REQUESTED_EXPIRES
        while True:
            assert self._token is not None
            try:
                response = await connection.request(self._registration.build(self._token, expires))
            except (ConnectionClosed, TimeoutError) as exc:
                log.info("REGISTER got no answer: %s", exc)
                return
            min_expires = parse_decimal(response.headers.get("Min-Expires"))
            if response.status_code == 423 and min_expires is not None:
                expires = min_expires
                continue
            if not response.is_success:
                raise _Refused(response)
            granted = self._registration.granted_expires(response)
            if granted is None:
                raise _Refused(response, InternalError("the hub's answer to REGISTER names none of our Contacts"))
            self._registered = True
            self._turn = turn_servers(response)
            self._forbidden_count = self._reconnect_count = 0
            self._set_status(ClientStatus.CONNECTED)
            if self._outcome is not None and not self._outcome.done():
                self._outcome.set_result(None)
            done, _ = await asyncio.wait({reader}, timeout=refresh_delay(granted))
            if done:
                return
            await self._fetch_token()

    async def _after_refusal(self, refused: _Refused) -> bool:
        """Handle a refused REGISTER as the seed SDK does; ``True`` to try again."""
        response = refused.response
        code = response.status_code
        log.warning("REGISTER refused: %d %s", code, response.reason)
        if refused.error is not None:
            self._fail(refused.error)
        elif code == 403:
            self._forbidden_count += 1
            if self._forbidden_count >= self.forbidden_attempts:
                self._fail(ForbiddenError(response.reason))
                return False
            await asyncio.sleep(self.forbidden_retry_delay)
            await self._fetch_token()
            return True
        if code == 406:
            self._fail(NotAcceptableError(response.reason))
        else:
            self._fail(InternalError("Could not register to WebRTC Server"))
        return False

    async def _fetch_token(self) -> None:
        try:
            token = self._refresh_token()
            if inspect.isawaitable(token):
                token = await token
        except Exception:
            log.exception("refresh_token() failed; keeping the previous token")
            return
        if not isinstance(token, str) or not token:
            log.error("refresh_token() returned %r, not a JWT; keeping the previous token", token)
            return
        self._token = token

    async def _reconnect_pause(self) -> None:
        delay = reconnect_delay(self._reconnect_count, self.reconnect_delay_min, self.reconnect_delay_max)
        self._reconnect_count += 1
        await asyncio.sleep(delay)

    def _fail(self, error: ClientError) -> None:
        self._set_status(ClientStatus.ERROR)
        self._emit("error", error)
        if self._outcome is not None and not self._outcome.done():
            self._outcome.set_exception(error)
        self._set_status(ClientStatus.OFFLINE)

    def _set_status(self, status: ClientStatus) -> None:
        if status is not self._status:
            self._status = status
            self._emit("status", status)

    async def send_message(self, content_type: str, body: bytes) -> Response:
        """Send the hub one MESSAGE on this client's registered connection (beyond the seed: a
        door reports its unlocks so). Raises ``RuntimeError`` when not ``connected``, and the
        transport's ``ConnectionClosed`` or ``TimeoutError`` when it gets no answer."""
        connection = self._connection
        if self._status is not ClientStatus.CONNECTED or connection is None:
            raise RuntimeError(f"cannot send a message while the client is {self._status.value}")
        return await connection.request(build_message(self._registration, content_type, body))

    # -- calls ---------------------------------------------------------------------------------

    def start_call(self, **params: object) -> Call:
        """Call out through the hub: the token's call flow runs with ``params`` as variables.

        Returns the :class:`Call` at once, in status ``connecting``; raises when not ``connected``.
        """
        connection = self._connection
        if self._status is not ClientStatus.CONNECTED or connection is None or self._token is None:
            raise RuntimeError(f"cannot start a call while the client is {self._status.value}")
        media = new_peer_connection(self._media_policy())
        source = MutableSource(self.audio.source())
        media.addTrack(source)
        call = self._new_call(connection, media, source)
        self._spawn(self._dial(call, dict(params), self._token))
        return call

    async def _dial(self, call: Call, params: dict[str, object], token: str) -> None:
        def make_invite(sdp: str) -> Request:
            invite = build_invite(self._registration, token, sdp, params)
            self._calls[invite.call_id] = call  # before the hub can answer
            return invite

        await call.start_outgoing(make_invite)

    def _media_policy(self) -> MediaPolicy:
        """The app's policy, plus the TURN servers the hub handed out with the registration."""
        policy = self.audio.policy
        return replace(policy, ice_servers=(*policy.ice_servers, *self._turn)) if self._turn else policy

    def _new_call(self, connection: SipConnection, media: RTCPeerConnection, source: MutableSource) -> Call:
        return Call(connection, media, source, self.audio, self._tones, self._registration, self._call_finished)

    def _call_finished(self, call: Call) -> None:
        self._calls.pop(call.id, None)

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._call_tasks.add(task)
        task.add_done_callback(self._call_tasks.discard)

    def _on_sip_event(self, connection: SipConnection, event: Event) -> None:
        if not isinstance(event, RequestReceived):
            return
        request, transaction = event.request, event.transaction
        call = self._calls.get(request.call_id)
        if transaction is None:  # the hub's ACK of our 200
            if call is not None:
                call.on_ack()
            return
        method = request.method
        if method == "INVITE" and request.to.tag is None:
            self._offered(connection, transaction, request)
        elif method == "CANCEL":
            incoming = self._incoming.get(request.call_id)
            status = 481 if incoming is None or incoming.settled else 200
            connection.send_response(transaction, make_response(request, status))
            if incoming is not None:
                incoming.cancelled()
        elif call is not None and request.to.tag is not None:
            call.on_request(transaction, request)
        elif method == "OPTIONS":
            connection.send_response(transaction, make_response(request, 200, headers=[("Allow", ALLOW)]))
        elif method == "MESSAGE" and request.to.tag is None and content_type(request.headers) == UNLOCK_CONTENT_TYPE:
            # the hub's own unlock request (Home Assistant's Open door): who it is for, as the hub says
            connection.send_response(transaction, make_response(request, 200))
            self._emit("unlockRequest", asserted_source(request.headers))
        elif request.to.tag is not None:
            connection.send_response(transaction, make_response(request, 481, "Call/Transaction Does Not Exist"))
        else:
            connection.send_response(transaction, make_response(request, 405, headers=[("Allow", "OPTIONS,INVITE")]))

    def _offered(self, connection: SipConnection, transaction: ServerTransaction, invite: Request) -> None:
        connection.send_response(
            transaction, make_response(invite, 100, headers=[("Supported", "timer,ice,replaces,outbound")])
        )
        media = new_peer_connection(self._media_policy())
        source = MutableSource(self.audio.source())
        contact = f"<sip:{self._registration.contact_user}@{self._registration.via_host};transport=ws>"

        def make_call(media: RTCPeerConnection, source: MutableSource) -> Call:
            call = self._new_call(connection, media, source)
            self._incoming.pop(invite.call_id, None)
            self._calls[invite.call_id] = call
            return call

        incoming = IncomingCall(
            connection,
            transaction,
            invite,
            media,
            source,
            contact,
            make_call,
            self._not_answered,
            self.audio,
            self._tones,
        )
        self._incoming[invite.call_id] = incoming
        self._emit("incoming", incoming)

    def _not_answered(self, incoming: IncomingCall) -> None:
        self._incoming.pop(incoming.id, None)
        self._emit("canceled", incoming)

    async def _calls_lost(self) -> None:
        """The socket to the hub closed: every call on it is over."""
        for incoming in list(self._incoming.values()):
            incoming.connection_lost()
        await asyncio.gather(*(call.connection_lost() for call in list(self._calls.values())))
