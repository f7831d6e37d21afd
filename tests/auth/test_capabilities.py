"""Capability strings in the seed SDK's exact form, both ways."""

from __future__ import annotations

import pytest

from intercom.auth import (
    CapabilityError,
    IncomingCapability,
    InvalidIdentity,
    OutgoingCapability,
    parse_capability,
)


def test_outgoing_formats_exactly_as_the_seed_documents():
    capability = OutgoingCapability("cf1", "door", {"a": "1", "b": "x y"})
    assert str(capability) == (
        "client.outgoing?callProcessor=callflow&callProcessorId=cf1&identity=door&variables=a%3D1%26b%3Dx%2By"
    )
    assert parse_capability(str(capability)) == capability


def test_incoming_formats_exactly_as_the_seed_documents():
    assert str(IncomingCapability("desk_1")) == "client.incoming?identity=desk_1"
    assert parse_capability("client.incoming?identity=desk_1") == IncomingCapability("desk_1")


def test_outgoing_without_identity_or_variables():
    parsed = parse_capability("client.outgoing?callProcessor=callflow&callProcessorId=abc")
    assert parsed == OutgoingCapability("abc")
    assert str(parsed) == "client.outgoing?callProcessor=callflow&callProcessorId=abc"


def test_unknown_capability_is_ignored():
    assert parse_capability("client.video?identity=x") is None
    assert parse_capability("") is None


@pytest.mark.parametrize("identity", ["", "a" * 31, "front door", "dé", "a-b", "a%2Fb"])
def test_bad_identity(identity):
    with pytest.raises(InvalidIdentity):
        parse_capability(f"client.incoming?identity={identity}")


@pytest.mark.parametrize("identity", ["a", "A" * 30, "desk_1", "0"])
def test_good_identity(identity):
    assert parse_capability(f"client.incoming?identity={identity}") == IncomingCapability(identity)


@pytest.mark.parametrize(
    "text",
    [
        "client.incoming",
        "client.outgoing?callProcessor=callflow",
        "client.outgoing?callProcessor=number&callProcessorId=x",
    ],
)
def test_known_capability_with_bad_parameters(text):
    with pytest.raises(CapabilityError):
        parse_capability(text)
