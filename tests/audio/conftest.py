"""Audio tests run our sounddevice code against PortAudio on a JACK dummy server of their own.

``jack_server`` starts jackd (skipping the test when JACK is not installed), ``probe`` feeds our
capture and hears our playback through JACK, ``sound`` stops every track and sink a test opened
before the server goes, and ``audio_unit`` connects SDK clients whose calls use a given
:class:`CallAudio`. The hub offers only 127.0.0.1, as in the call tests.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from intercom.hub import HubConfig
from intercom.media import MediaPolicy
from intercom.media.sound import MicrophoneTrack, SpeakerSink
from intercom.sdk import CallAudio, Client, ClientStatus

from ..units import LOOPBACK, STEP, Events, Unit
from .jackkit import JackProbe, JackServer, JackUnavailable, running_jack_server


@pytest.fixture
def hub_config(tmp_path: Path) -> HubConfig:
    return HubConfig(
        data_dir=tmp_path / "hub", host="127.0.0.1", port=0, media=MediaPolicy(host_addresses=LOOPBACK, jitter_frames=0)
    )


@pytest.fixture
def jack_server(tmp_path: Path) -> Iterator[JackServer]:
    """A jackd dummy sound card (48 kHz, 960-sample periods) that PortAudio's default devices use."""
    try:
        with running_jack_server(tmp_path) as server:
            yield server
    except JackUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture
async def probe(jack_server: JackServer) -> AsyncIterator[JackProbe]:
    probe = JackProbe(jack_server, asyncio.get_running_loop())
    yield probe
    await probe.close()


class Sound:
    """Tracks and sinks a test opened, all stopped at teardown."""

    def __init__(self) -> None:
        self.opened: list[MicrophoneTrack | SpeakerSink] = []

    def microphone(self, **options: Any) -> MicrophoneTrack:
        track = MicrophoneTrack(**options)
        self.opened.append(track)
        return track

    def speaker(self, track: Any, **options: Any) -> SpeakerSink:
        sink = SpeakerSink(track, **options)
        self.opened.append(sink)
        return sink

    async def close(self) -> None:
        for item in self.opened:
            if isinstance(item, SpeakerSink):
                async with asyncio.timeout(STEP):
                    await item.stop()
                item.track.stop()
            else:
                item.stop()


@pytest.fixture
async def sound(jack_server: JackServer) -> AsyncIterator[Sound]:
    kit = Sound()
    yield kit
    await kit.close()


@pytest.fixture
async def audio_unit(hub, jack_server: JackServer) -> AsyncIterator[Callable[..., Any]]:
    """Connected clients whose calls use the given :class:`CallAudio` (its policy set to loopback)."""
    units: list[Unit] = []

    async def make(identity: str, audio: CallAudio, outgoing: str | None = None, incoming: bool = True) -> Unit:
        token = hub.token(identity, incoming=incoming, outgoing=outgoing)
        audio = CallAudio(source=audio.source, sink=audio.sink, policy=MediaPolicy(host_addresses=LOOPBACK))
        config = hub.running.config
        trust = ssl.create_default_context(cafile=str(config.cert_file)) if config.secure else None
        client = Client(
            host=hub.address, refresh_token=lambda: token, secure=config.secure, ssl_context=trust, audio=audio
        )
        events = Events()
        for name in ("status", "incoming", "canceled", "error"):
            client.on(name, events.record(name))
        async with asyncio.timeout(STEP):
            await client.setup(jwt=token)
        assert client.status is ClientStatus.CONNECTED
        unit = Unit(client, events)
        units.append(unit)
        return unit

    yield make
    for unit in units:
        async with asyncio.timeout(STEP):
            await unit.client.destroy()
