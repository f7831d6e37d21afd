"""Routes the call requests arriving on the hub's SIP connections to their calls.

New INVITEs are checked (token, ``client.outgoing``, the flow, the offer) before a call exists:
a caller without the capability gets 403, an unknown flow 404, a caller over a call limit 486 or
503 (:mod:`intercom.hub.call_limits`). CANCEL, BYE, INFO, UPDATE and
the ACK of a 2xx find their call by dialog; a request for no known dialog gets 481. What passes
from one leg to the other is built anew, with the sender's identity asserted by the hub
(:mod:`intercom.sip.door`); a MESSAGE is a browser's report or a door's event.

A dialog's Call-ID and tags travel in clear inside every request of it, and anyone may open a
WebSocket: so a request inside a dialog counts only on the connection of the leg it belongs to
(RFC 5626's flow). On any other it gets 403 (an ACK, which has no answer, is dropped) and
changes nothing.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from pathlib import Path
from urllib.parse import parse_qsl

from ..auth import Grant, KeyLookup, TokenError, check_token
from ..media import new_peer_connection, offers_opus
from ..sip import DialogError, Request, Response, ServerTransaction, make_response
from ..sip.door import ASSERTED_GROUP, DOOR_EVENT_CONTENT_TYPE, UNLOCK_CONTENT_TYPE, asserted_identity_header
from ..sip.dtmf import DTMF_CONTENT_TYPE, dtmf_signals
from ..sip.headers import content_type as content_type_of
from ..transport import ConnectionClosed, SipConnection
from .call_limits import CallLimits, CallRefused
from .call_log import CallLog, Publisher
from .callflows import CLIENT_PREFIX, CallFlow
from .calls import FlowServices, HubCall
from .config import HubConfig
from .edge_flows import hub_address
from .legs import SDP, CallerLeg, HubAddress
from .recordings import recover_recordings
from .records import CallRecord, LegRecord, UnlockEvent, Webhook
from .registrar import Registrar
from .storage import Storage

log = logging.getLogger(__name__)

STATS = "application/json"
IN_DIALOG_METHODS = ("BYE", "INFO", "UPDATE")


class CallService:
    def __init__(
        self,
        config: HubConfig,
        registrar: Registrar,
        storage: Storage,
        lookup_key: KeyLookup,
        publisher: Publisher | None = None,
    ) -> None:
        self.config = config
        self.registrar = registrar
        self.storage = storage
        self.lookup_key = lookup_key
        self.calls: dict[str, HubCall] = {}  # by HubCall.id: the caller's Call-ID, or the call's id
        self.limits = CallLimits(config, self.calls)
        self.call_log = CallLog(storage, publisher)
        self.services = FlowServices(
            Path(config.data_dir),
            self.call_log,
            outbound=config.outbound,
            storage_limits=config.storage_limits,
            recording_sync_seconds=config.recording_sync_seconds,
        )
        self.started = self.answered = 0  # calls since start-up, for /metrics
        self._idle = asyncio.Event()
        self._idle.set()
        self._originated: set[asyncio.Task[None]] = set()

    @property
    def hub(self) -> HubAddress:
        return HubAddress.of(self.config)  # read late: an embedded hub learns its port at start-up

    async def recover(self) -> None:
        """At start-up, before the first call: what a stopped hub left running is logged as ended."""
        await recover_recordings(self.call_log, Path(self.config.data_dir))
        if left := await self.call_log.close_unfinished():
            log.warning("%d call(s) were still going when the hub last stopped: logged as ended", left)

    # -- a new call -----------------------------------------------------------------------------

    async def invite(self, connection: SipConnection, transaction: ServerTransaction, request: Request) -> None:
        connection.send_response(transaction, make_response(request, 100))
        checked = await self._check_invite(request)
        if isinstance(checked, tuple) and isinstance(checked[0], int):
            status, reason = checked
            log.info("INVITE %s refused: %d %s", request.call_id, status, reason)
            connection.send_response(transaction, make_response(request, status, reason))
            return
        grant, flow, variables = checked  # type: ignore[misc]
        identity = grant.outgoing.identity if grant.outgoing else None
        try:
            self.limits.check_new(identity)
        except CallRefused as refused:
            headers = list(refused.headers.items())
            connection.send_response(
                transaction, make_response(request, refused.sip_status, refused.sip_reason, headers=headers)
            )
            return
        policy = self.config.leg_media()
        hub = hub_address(connection, self.hub)
        caller = CallerLeg(
            connection, transaction, request, hub, new_peer_connection(policy, opus_passthrough=True), identity
        )
        name = identity or "anonymous"
        # Every client dials the same number (00000): what it called is the flow its token names.
        record = CallRecord(source=f"{CLIENT_PREFIX}{name}", destination=flow.id, call_flow_id=flow.id)
        caller_record = LegRecord(call_id=record.id, source=record.source, destination=flow.id, direction="incoming")
        call = HubCall(
            caller,
            name,
            variables,
            self.registrar,
            self.hub,
            policy,
            self.services,
            self.limits,
            record,
            caller_record,
            caller_key=grant.access_key_id,
        )
        self._admit(call)  # before any await: the next INVITE counts this call
        await self.call_log.new_call(record)
        await self.call_log.new_leg(caller_record)
        await self._run(call, flow)

    async def originate(self, source: str, identity: str, flow: CallFlow, webhook: Webhook | None = None) -> CallRecord:
        """A Voice API call: ring client ``identity`` and run ``flow`` once it answers (in the
        background); :class:`CallRefused` over a call limit."""
        self.limits.check_new(identity)
        record = CallRecord(
            source=source, destination=f"{CLIENT_PREFIX}{identity}", status="queued", call_flow_id=flow.id
        )
        policy = self.config.leg_media()
        call = HubCall(None, source, {}, self.registrar, self.hub, policy, self.services, self.limits, record)
        self._admit(call)  # before the await: the next call counts this one
        await self.call_log.new_call(record, webhook)
        task = asyncio.create_task(self._run(call, flow), name=f"call {record.id}")
        self._originated.add(task)
        task.add_done_callback(self._originated.discard)
        return record

    async def hang_up(self, call_id: str) -> bool:
        """End a running call by its id (DELETE /v1/calls/{id}); ``False`` when none is running."""
        call = next((call for call in self.calls.values() if call.record.id == call_id), None)
        if call is None:
            return False
        await call.hang_up("hung up through the Voice API")
        return True

    def key_ids(self) -> set[str]:
        """The access keys the running calls stand on."""
        return {key_id for call in self.calls.values() for key_id in call.key_ids()}

    async def keys_revoked(self, revoked: set[str]) -> None:
        """End the calls (and the ringing of devices) standing on these revoked keys."""
        await asyncio.gather(*(call.keys_revoked(revoked) for call in list(self.calls.values())))

    def _admit(self, call: HubCall) -> None:
        self.calls[call.id] = call
        self.started += 1
        self._idle.clear()

    async def _run(self, call: HubCall, flow: CallFlow) -> None:
        try:
            await call.run(flow)
        finally:
            self.calls.pop(call.id, None)
            self.answered += call.callee is not None
            if not self.calls:
                self._idle.set()

    async def close(self) -> None:
        """At shutdown, after the calls: the HTTP client of the flows."""
        await self.services.close()

    @property
    def bridged_count(self) -> int:
        return sum(call.bridge is not None and call.bridge.running for call in self.calls.values())

    async def wait_idle(self) -> None:
        """Until no call is left, its media closed."""
        await self._idle.wait()

    async def _check_invite(self, request: Request) -> tuple[int, str] | tuple[Grant, CallFlow, dict[str, str]]:
        token = request.headers.get("WebRTC-Token")
        if not token:
            return 403, "Missing WebRTC-Token header"
        try:
            grant = check_token(token.strip(), self.lookup_key)
        except TokenError as exc:
            return exc.code, exc.reason
        if grant.outgoing is None:
            return 403, "Forbidden: the token has no client.outgoing capability"
        flow = await self.storage.get_call_flow(grant.outgoing.call_processor_id)
        if flow is None:
            return 404, f"Call flow {grant.outgoing.call_processor_id} not found"
        if request.call_id in self.calls:  # after the await: no other INVITE comes between this and _admit
            return 482, "Loop Detected"
        if content_type_of(request.headers) != SDP or not request.body:
            return 488, "Not Acceptable Here (an SDP offer is required)"
        if not offers_opus(request.body.decode("utf-8", errors="replace")):
            return 488, "Not Acceptable Here (the hub bridges Opus audio only)"
        try:
            params = user_data(request)
        except ValueError as exc:
            return 400, f"Bad Request ({exc})"
        return grant, flow, {**grant.outgoing.variables, **params}

    async def cancel(self, connection: SipConnection, transaction: ServerTransaction, request: Request) -> None:
        call = self.calls.get(request.call_id)
        caller = call.caller if call is not None else None
        if call is None or not isinstance(caller, CallerLeg) or caller.connection is not connection or caller.answered:
            connection.send_response(transaction, make_response(request, 481, "Call/Transaction Does Not Exist"))
            return
        connection.send_response(transaction, make_response(request, 200))
        await call.cancel_by_caller()

    async def message(self, connection: SipConnection, transaction: ServerTransaction, request: Request) -> None:
        """An out-of-dialog MESSAGE: a door's event (unlock, wrong code, lockout), or the browser
        client's post-dial-delay report (PROTOCOL.md section 3)."""
        if content_type_of(request.headers) == DOOR_EVENT_CONTENT_TYPE:
            status, reason = await self._door_event(connection, request)
            connection.send_response(transaction, make_response(request, status, reason))
            return
        call = self.calls.get((request.headers.get("X-Call-Relates") or "").strip())
        if call is not None:
            try:
                call.stats["caller"].post_dial_delay_ms = float(json.loads(request.body)["clientPostDialDelay"])
            except (ValueError, KeyError, TypeError):
                log.info("call %s: unreadable post-dial-delay report %r", call.id, request.body[:100])
        connection.send_response(transaction, make_response(request, 200))

    async def _door_event(self, connection: SipConnection, request: Request) -> tuple[int, str | None]:
        """Log a door's event and tell the webhooks; the door is who registered on this connection,
        whatever the body says."""
        door = await self.registrar.identity_of(connection)
        if door is None:
            return 403, "Forbidden (register first)"
        try:
            event = UnlockEvent.from_door(door, request.body)
        except ValueError as exc:
            return 400, f"Bad Request ({exc})"
        log.info(
            "door %s: %s (%s, %s, call %s)", door, event.event, event.source, event.who or "nobody", event.sip_call_id
        )
        await self.call_log.publish_event(event)
        return 200, None

    # -- inside a call --------------------------------------------------------------------------

    def _find(self, request: Request) -> tuple[HubCall, str] | None:
        call_id, to_tag, from_tag = request.call_id, request.to.tag, request.from_.tag
        for call in self.calls.values():
            for side, leg in (("caller", call.caller), ("callee", call.callee)):
                if leg is None:
                    continue
                _, dialog = call.dialog_of(side)
                if dialog is not None and dialog.id == (call_id, to_tag, from_tag):
                    return call, side
        return None

    async def in_dialog(
        self, connection: SipConnection, transaction: ServerTransaction | None, request: Request
    ) -> None:
        found = self._find(request)
        if found is not None and found[0].dialog_of(found[1])[0] is not connection:
            log.info(  # not a warning: anyone may send these, as many as they like
                "call %s: %s for the %s's dialog from %s refused: not the connection of this dialog",
                found[0].id,
                request.method,
                found[1],
                connection.name,
            )
            if transaction is not None:  # an ACK has no answer
                reason = "Forbidden (not the connection of this dialog)"
                connection.send_response(transaction, make_response(request, 403, reason))
            return
        if transaction is None:  # the ACK of a 2xx: nothing to answer
            if found is not None and found[1] == "caller" and isinstance(found[0].caller, CallerLeg):
                found[0].caller.acknowledged.set()
            return
        if found is None:
            connection.send_response(transaction, make_response(request, 481, "Call/Transaction Does Not Exist"))
            return
        call, side = found
        _, dialog = call.dialog_of(side)
        assert dialog is not None
        try:
            dialog.receive_request(request)
        except DialogError as exc:
            connection.send_response(transaction, make_response(request, 500, f"Server Internal Error ({exc})"))
            return
        if request.method == "BYE":
            connection.send_response(transaction, make_response(request, 200))
            await call.end(by=side)
        elif request.method == "UPDATE":  # a session-timer refresh: the call is alive
            headers = [("Contact", str(hub_address(connection, self.hub).contact()))]
            expires = request.headers.get("Session-Expires")
            if expires:
                headers.append(("Session-Expires", expires))
            connection.send_response(transaction, make_response(request, 200, headers=headers))
        elif request.method == "INFO":
            await self._info(call, side, connection, transaction, request)
        else:
            allow = ",".join(("ACK", *IN_DIALOG_METHODS))
            connection.send_response(transaction, make_response(request, 405, headers=[("Allow", allow)]))

    async def _info(
        self, call: HubCall, side: str, connection: SipConnection, transaction: ServerTransaction, request: Request
    ) -> None:
        kind = content_type_of(request.headers)
        if kind == STATS:
            call.stats[side].add_report(request.body.decode("utf-8", errors="replace"))
            connection.send_response(transaction, make_response(request, 200))
            return
        if kind == UNLOCK_CONTENT_TYPE:
            await self._unlock_request(call, side, connection, transaction, request)
            return
        if kind != DTMF_CONTENT_TYPE:
            accept = f"{DTMF_CONTENT_TYPE}, {UNLOCK_CONTENT_TYPE}, {STATS}"
            connection.send_response(transaction, make_response(request, 415, headers=[("Accept", accept)]))
            return
        connection.send_response(transaction, make_response(request, 200))
        if side == "caller" and call.bridge is None:  # the flow is talking to the caller: keys are for it
            for key in dtmf_signals(request.body):
                call.key_pressed(key)
            return
        await self._pass_on(call, side, DTMF_CONTENT_TYPE, request.body)

    async def _unlock_request(
        self, call: HubCall, side: str, connection: SipConnection, transaction: ServerTransaction, request: Request
    ) -> None:
        """A desk's UNLOCK: only ever to the client bridged with it, never to a flow of the hub's;
        the far end's answer is the sender's."""
        if call.bridge is None:
            log.info("call %s: unlock request from the %s with nobody bridged: refused", call.id, side)
            connection.send_response(transaction, make_response(request, 403, "Forbidden (not bridged to a client)"))
            return
        answer = await self._pass_on(call, side, UNLOCK_CONTENT_TYPE, b"")
        status = answer.status_code if answer is not None else 408  # the far end is gone or silent
        connection.send_response(transaction, make_response(request, status))

    async def _pass_on(self, call: HubCall, side: str, kind: str, body: bytes) -> Response | None:
        """An INFO to the other leg, built anew: its content, and the identity the hub asserts for
        the sender (never a header the sender wrote). ``None`` when it did not arrive."""
        other_connection, other_dialog = call.dialog_of("callee" if side == "caller" else "caller")
        if other_dialog is None or other_connection.closed:
            return None
        headers = [("Content-Type", kind)]
        identity = call.identity_of(side)
        if identity is not None:
            headers.append(asserted_identity_header(identity, self.hub.host))
            key_id = call.key_of(side)
            if key_id is not None and (group := self.registrar.group_of(key_id)) is not None:
                headers.append((ASSERTED_GROUP, group))
        via = hub_address(other_connection, self.hub).via()
        info = other_dialog.create_request("INFO", via, headers=headers, body=body)
        try:
            return await other_connection.request(info)
        except (ConnectionClosed, TimeoutError) as exc:
            log.info("call %s: INFO (%s) from the %s not delivered: %s", call.id, kind, side, exc)
            return None

    async def connection_lost(self, connection: SipConnection) -> None:
        """A client's socket closed: its calls end for the other side too."""
        for call in list(self.calls.values()):
            if call.caller is not None and call.caller.connection is connection:
                if call.established:
                    await call.end(by="caller")
                else:
                    await call.cancel_by_caller()
            elif call.callee is not None and call.callee.connection is connection:
                await call.end(by="callee")


def user_data(request: Request) -> dict[str, str]:
    """The call's parameters from ``WebRTC-UserData``: base64 of a url-encoded query string."""
    value = request.headers.get("WebRTC-UserData")
    if not value:
        return {}
    try:
        text = base64.b64decode(value.strip(), validate=True).decode()
        return dict(parse_qsl(text, keep_blank_values=True, strict_parsing=True))
    except ValueError as exc:  # binascii.Error and UnicodeDecodeError are ValueErrors too
        raise ValueError(f"WebRTC-UserData is not base64 of a query string: {exc}") from None
