"""Key scopes in check_token: a unit key signs for its own identities and capabilities only."""

from __future__ import annotations

import logging

import pytest

from intercom.auth import (
    ADMIN,
    AccessKey,
    IncomingCapability,
    KeyScope,
    OutgoingCapability,
    TokenForbidden,
    check_token,
    mint_token,
    unit_scope,
)

from .test_tokens import NOW, claims, sign

DOOR = AccessKey("doorkey", "d" * 40, "door", NOW - 100, scope=unit_scope("door", "door", "ring_desks"))
DESK = AccessKey("deskkey", "e" * 40, "desk", NOW - 100, scope=unit_scope("desk", "desk", "ring_door"))
ADMIN_KEY = AccessKey("adminkey", "a" * 40, "admin", NOW - 100, scope=ADMIN)
LEGACY = AccessKey("legacykey", "l" * 40, "old", NOW - 100)
LISTEN_ONLY = AccessKey("listenkey", "n" * 40, "listener", NOW - 100, scope=KeyScope(identities=("hall",)))
KEYS = {key.id: key for key in (DOOR, DESK, ADMIN_KEY, LEGACY, LISTEN_ONLY)}


def check(key: AccessKey, *capabilities: IncomingCapability | OutgoingCapability):
    return check_token(mint_token(key, list(capabilities), now=NOW), KEYS.get, NOW)


def refused(key: AccessKey, *capabilities: IncomingCapability | OutgoingCapability) -> str:
    with pytest.raises(TokenForbidden) as caught:
        check(key, *capabilities)
    assert caught.value.code == 403
    return caught.value.reason


def test_unit_scopes_of_a_door_and_a_desk():
    assert DOOR.scope == KeyScope(False, ("door",), True, ("ring_desks",))
    assert DESK.scope == KeyScope(False, ("desk",), True, ("ring_door",))
    with pytest.raises(ValueError, match="neither door nor desk"):
        unit_scope("gate", "gate", "ring_desks")


def test_a_unit_key_signs_its_own_identity_and_flow():
    grant = check(DOOR, IncomingCapability("door"), OutgoingCapability("ring_desks", "door"))
    assert grant.identity == "door" and grant.outgoing is not None and grant.incoming is not None


def test_a_unit_key_may_not_mint_for_another_identity():
    assert refused(DOOR, IncomingCapability("desk")) == "Forbidden: key doorkey may mint tokens for door only, not desk"
    reason = refused(DOOR, OutgoingCapability("ring_desks", "desk"))
    assert reason == "Forbidden: key doorkey may mint tokens for door only, not desk"


def test_the_outgoing_capability_must_name_an_identity_of_the_key():
    reason = refused(DOOR, OutgoingCapability("ring_desks"))
    assert reason == "Forbidden: key doorkey may mint tokens for door only: its client.outgoing names no identity"


def test_a_unit_key_may_not_start_another_flow():
    reason = refused(DOOR, OutgoingCapability("ring_door", "door"))
    assert reason == "Forbidden: key doorkey may not start call flow ring_door (only ring_desks)"


def test_a_key_without_incoming_may_not_receive_calls():
    assert refused(LISTEN_ONLY, IncomingCapability("hall")) == "Forbidden: key listenkey may not receive calls"
    reason = refused(LISTEN_ONLY, OutgoingCapability("ring_desks", "hall"))
    assert reason == "Forbidden: key listenkey may not start call flow ring_desks (only none)"


def test_an_admin_key_signs_anything():
    grant = check(ADMIN_KEY, IncomingCapability("desk"), OutgoingCapability("anything", "anyone"))
    assert grant.incoming == IncomingCapability("desk")


def test_a_legacy_key_works_and_warns_once_with_the_command_that_splits_it(caplog):
    caplog.set_level(logging.WARNING, logger="intercom.auth.keys")
    for identity in ("desk", "door", "anyone"):
        assert check(LEGACY, IncomingCapability(identity)).identity == identity
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("access key legacykey (old) is a legacy unscoped key")
    assert "intercom units add --role door --identity door" in warnings[0]
    assert "intercom keys revoke legacykey" in warnings[0]


def test_scope_survives_json():
    for scope in (ADMIN, DOOR.scope, LISTEN_ONLY.scope):
        assert scope is not None and KeyScope.from_json(scope.to_json()) == scope


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("claim", ["iat", "exp"])
def test_claims_that_are_not_finite_numbers_are_403(claim, value):
    token = sign(claims(**{claim: value}))
    with pytest.raises(TokenForbidden, match="finite numbers"):
        check_token(token, {"key1": AccessKey("key1", "secret-" + "x" * 64, "t", NOW)}.get, NOW)


def test_a_huge_integer_expiry_is_refused_as_too_long():
    token = sign(claims(exp=10**400))
    with pytest.raises(TokenForbidden, match="lifetime over 24 h"):
        check_token(token, {"key1": AccessKey("key1", "secret-" + "x" * 64, "t", NOW)}.get, NOW)
