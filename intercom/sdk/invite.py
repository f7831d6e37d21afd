"""The call-setup requests the client sends, shaped as the browser client sends them (PROTOCOL.md section 3)."""

from __future__ import annotations

import base64
import json
import random
from urllib.parse import quote

from .. import __version__
from ..sip import Request
from ..sip.ids import new_branch, new_call_id, new_tag
from .registration import ALLOW, USER_AGENT, RegistrationState

CALL_TARGET_USER = "00000"
SESSION_EXPIRES = 90


def encode_user_data(params: dict[str, object]) -> str | None:
    """``WebRTC-UserData``: base64 of ``key=value&...``, each part encodeURIComponent-encoded;
    ``None`` (no header) for no params."""
    if not params:
        return None
    query = "&".join(f"{_uri_component(str(key))}={_uri_component(_js_string(value))}" for key, value in params.items())
    return base64.b64encode(query.encode()).decode()


def _uri_component(text: str) -> str:
    return quote(text, safe="-_.!~*'()")  # what JavaScript's encodeURIComponent leaves alone


def _js_string(value: object) -> str:
    """``String(value)`` as JavaScript writes it, for the values a Python caller is likely to pass."""
    if value is True or value is False:
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def build_invite(state: RegistrationState, token: str, sdp: str, params: dict[str, object]) -> Request:
    """The INVITE to ``sip:00000@<hub>`` that starts an outgoing call."""
    target = f"sip:{CALL_TARGET_USER}@{state.host}"
    invite = Request(method="INVITE", uri=target)
    user_data = encode_user_data(params)
    for name, value in (
        ("Via", f"SIP/2.0/WSS {state.via_host};branch={new_branch()}"),
        ("Max-Forwards", "69"),
        ("To", f"<{target}>"),
        ("From", f"<sip:anonymous@{state.host}>;tag={new_tag()}"),
        ("Call-ID", new_call_id()),
        ("CSeq", f"{random.randint(0, 9999)} INVITE"),
        ("WebRTC-Token", token),
        ("SDK-Version", __version__),
        ("WebRTC-UserData", user_data),
        ("Contact", f"<sip:{state.contact_user}@{state.via_host};transport=ws;ob>"),
        ("Content-Type", "application/sdp"),
        ("Session-Expires", str(SESSION_EXPIRES)),
        ("Allow", ALLOW),
        ("Supported", "timer,ice,replaces,outbound"),
        ("User-Agent", USER_AGENT),
    ):
        if value is not None:
            invite.headers.add(name, value)
    invite.body = sdp.encode()
    return invite


def build_post_dial_delay(state: RegistrationState, invite: Request, delay_ms: float) -> Request:
    """The out-of-dialog MESSAGE reporting the time from INVITE to the first 180/183."""
    target = f"sip:{CALL_TARGET_USER}@{state.host}"
    message = Request(method="MESSAGE", uri=target)
    for name, value in (
        ("Via", f"SIP/2.0/WSS {state.via_host};branch={new_branch()}"),
        ("Max-Forwards", "69"),
        ("To", f"<{target}>"),
        ("From", f"<sip:anonymous@{state.host}>;tag={new_tag()}"),
        ("Call-ID", new_call_id()),
        ("CSeq", "1 MESSAGE"),
        ("X-Call-Relates", invite.call_id),
        ("Content-Type", "text/plain"),
        ("User-Agent", USER_AGENT),
    ):
        message.headers.add(name, value)
    message.body = json.dumps({"clientPostDialDelay": f"{delay_ms:.3f}"}, separators=(",", ":")).encode()
    return message
