"""Every token rule of the hub: one test each, with the reason phrase it must name."""

from __future__ import annotations

import time

import jwt
import pytest

from intercom.auth import (
    AccessKey,
    IncomingCapability,
    OutgoingCapability,
    TokenForbidden,
    TokenNotAcceptable,
    check_token,
    mint_token,
)

NOW = 1_800_000_000.0
KEY = AccessKey("key1", "secret-" + "x" * 64, "test", NOW - 100)
REVOKED = AccessKey("key2", "other-" + "y" * 32, "old", NOW - 100, revoked_at=NOW - 10)
KEYS = {KEY.id: KEY, REVOKED.id: REVOKED}


def lookup(key_id: str) -> AccessKey | None:
    return KEYS.get(key_id)


def claims(**changes) -> dict:
    base = {
        "accessKeyID": KEY.id,
        "capabilities": ["client.incoming?identity=desk"],
        "iat": int(NOW),
        "exp": int(NOW) + 3600,
    }
    base.update(changes)
    return {name: value for name, value in base.items() if value is not None}


def sign(payload: dict, secret: str = KEY.secret, algorithm: str = "HS256") -> str:
    return jwt.encode(payload, secret, algorithm=algorithm)


def refused(token: str, error=TokenForbidden, now: float = NOW) -> str:
    with pytest.raises(error) as caught:
        check_token(token, lookup, now)
    return caught.value.reason


def test_minted_token_grants_its_capabilities():
    token = mint_token(KEY, [OutgoingCapability("cf", "door", {"v": "1"}), IncomingCapability("door")], now=NOW)
    grant = check_token(token, lookup, NOW)
    assert grant.access_key_id == KEY.id
    assert grant.outgoing == OutgoingCapability("cf", "door", {"v": "1"})
    assert grant.incoming == IncomingCapability("door")
    assert grant.identity == "door"
    assert grant.expires_at - grant.issued_at == 3600
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_unknown_access_key():
    assert refused(sign(claims(accessKeyID="nope"))) == "Invalid token: unknown access key"


def test_revoked_access_key():
    assert refused(sign(claims(accessKeyID=REVOKED.id), REVOKED.secret)) == "Invalid token: access key revoked"


def test_bad_signature():
    assert refused(sign(claims(), "wrong-secret-" + "z" * 32)) == "Invalid token: bad signature"


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_other_hmac_algorithms(algorithm):
    assert "algorithm" in refused(sign(claims(), algorithm=algorithm))


def test_algorithm_none():
    token = jwt.encode(claims(), None, algorithm="none")
    assert refused(token) == "Invalid token: algorithm 'none' not allowed, use HS256"


def test_not_a_jwt():
    assert refused("hello") == "Invalid token: not a JWT"


@pytest.mark.parametrize("claim", ["accessKeyID", "capabilities", "iat", "exp"])
def test_missing_claim(claim):
    assert refused(sign(claims(**{claim: None}))) == f"Invalid token: missing claim {claim}"


def test_expired_beyond_the_skew():
    assert refused(sign(claims(iat=int(NOW) - 600, exp=int(NOW) - 31))) == "Invalid token: expired"


def test_expired_within_the_skew_is_accepted():
    assert check_token(sign(claims(iat=int(NOW) - 600, exp=int(NOW) - 29)), lookup, NOW)


def test_issued_in_the_future():
    assert refused(sign(claims(iat=int(NOW) + 31, exp=int(NOW) + 600))) == "Invalid token: issued in the future"


def test_issued_slightly_ahead_within_the_skew_is_accepted():
    assert check_token(sign(claims(iat=int(NOW) + 29, exp=int(NOW) + 600)), lookup, NOW)


def test_lifetime_over_a_day():
    assert refused(sign(claims(exp=int(NOW) + 86401))) == "Invalid token: lifetime over 24 h"


def test_lifetime_of_exactly_a_day_is_accepted():
    assert check_token(sign(claims(exp=int(NOW) + 86400)), lookup, NOW)


def test_no_recognised_capability():
    assert refused(sign(claims(capabilities=["client.video?identity=x"]))) == "Invalid token: no recognised capability"
    assert refused(sign(claims(capabilities=[]))) == "Invalid token: no recognised capability"


def test_capabilities_not_a_list():
    assert "list" in refused(sign(claims(capabilities="client.incoming?identity=desk")))


@pytest.mark.parametrize(
    "capability",
    [
        "client.incoming?identity=" + "a" * 31,
        "client.incoming?identity=",
        "client.outgoing?callProcessorId=c&identity=a b",
    ],
)
def test_bad_identity_is_406(capability):
    reason = refused(sign(claims(capabilities=[capability])), TokenNotAcceptable)
    assert reason.startswith("Invalid identity:")


def test_numbers_must_be_numbers():
    assert "numbers" in refused(sign(claims(iat="yesterday")))


def test_real_clock_default():
    token = mint_token(KEY, [IncomingCapability("desk")])
    assert check_token(token, lookup).identity == "desk"
    assert abs(check_token(token, lookup).issued_at - time.time()) < 5


@pytest.mark.parametrize(
    "token",
    [
        "a.b",
        "a.b.c.d",
        "e30.e30.",  # valid base64, but no algorithm, so it fails on the header
        "eyJhbGciOiJIUzI1NiJ9.W10.",  # claims are a JSON array
        "eyJhbGciOiJIUzI1NiJ9.e30.a",  # a signature of impossible length
        "eyJhbGciOiJIUzI1NiJ9.e3+0.",  # '+' is not base64url
        "eyJhbGciOiJIUzI1NiJ9=.e30.",  # padding is not allowed in a JWS
    ],
)
def test_malformed_tokens(token):
    assert refused(token).startswith("Invalid token:")


def test_pyjwt_tokens_with_extra_header_fields_are_accepted():
    token = jwt.encode(claims(), KEY.secret, algorithm="HS256", headers={"kid": "k1", "typ": "JWT"})
    assert check_token(token, lookup, NOW).identity == "desk"


def test_tampered_claims_break_the_signature():
    header, _, signature = sign(claims()).split(".")
    forged = jwt.encode(claims(capabilities=["client.incoming?identity=boss"]), "x" * 64, algorithm="HS256")
    assert refused(f"{header}.{forged.split('.')[1]}.{signature}") == "Invalid token: bad signature"
