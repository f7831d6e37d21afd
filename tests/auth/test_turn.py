from __future__ import annotations

import base64
import hashlib
import hmac

from intercom.auth import turn_credentials


def test_coturn_rest_api_form():
    credentials = turn_credentials("shared", "desk", ttl=600, now=1000)
    assert credentials.username == "1600:desk"
    digest = hmac.new(b"shared", b"1600:desk", hashlib.sha1).digest()
    assert credentials.password == base64.b64encode(digest).decode()
