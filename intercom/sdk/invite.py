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


def _to_hub(
    state: RegistrationState, method: str, cseq: int, headers: list[tuple[str, str | None]], body: bytes
) -> Request:
    """A new out-of-dialog request to ``sip:00000@<hub>``, with the browser client's first headers."""
    target = f"sip:{CALL_TARGET_USER}@{state.host}"
    request = Request(method=method, uri=target)
    for name, value in (
        ("Via", f"SIP/2.0/WSS {state.via_host};branch={new_branch()}"),
        ("Max-Forwards", "69"),
        ("To", f"<{target}>"),
        ("From", f"<sip:anonymous@{state.host}>;tag={new_tag()}"),
        ("Call-ID", new_call_id()),
        ("CSeq", f"{cseq} {method}"),
        *headers,
    ):
        if value is not None:
            request.headers.add(name, value)
    request.body = body
    return request


def build_invite(state: RegistrationState, token: str, sdp: str, params: dict[str, object]) -> Request:
    """The INVITE that starts an outgoing call; the CSeq starts at a random number, as JsSIP's."""
    headers = [
        ("WebRTC-Token", token),
        ("SDK-Version", __version__),
        ("WebRTC-UserData", encode_user_data(params)),
        ("Contact", f"<sip:{state.contact_user}@{state.via_host};transport=ws;ob>"),
        ("Content-Type", "application/sdp"),
        ("Session-Expires", str(SESSION_EXPIRES)),
        ("Allow", ALLOW),
        ("Supported", "timer,ice,replaces,outbound"),
        ("User-Agent", USER_AGENT),
    ]
    return _to_hub(state, "INVITE", random.randint(0, 9999), headers, sdp.encode())


def build_post_dial_delay(state: RegistrationState, invite: Request, delay_ms: float) -> Request:
    """The out-of-dialog MESSAGE reporting the time from INVITE to the first 180/183."""
    headers = [("X-Call-Relates", invite.call_id), ("Content-Type", "text/plain"), ("User-Agent", USER_AGENT)]
    body = json.dumps({"clientPostDialDelay": f"{delay_ms:.3f}"}, separators=(",", ":")).encode()
    return _to_hub(state, "MESSAGE", 1, headers, body)


def build_message(state: RegistrationState, content_type: str, body: bytes) -> Request:
    """An out-of-dialog MESSAGE to the hub (a door's event), on the registered connection."""
    headers = [("Content-Type", content_type), ("User-Agent", USER_AGENT)]
    return _to_hub(state, "MESSAGE", 1, headers, body)
