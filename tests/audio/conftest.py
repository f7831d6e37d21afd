"""Audio tests run our sounddevice code against PortAudio on a JACK dummy server of their own.

``jack_server`` starts jackd (failing with the fix when JACK is not installed), ``probe`` feeds our
capture and hears our playback through JACK, ``sound`` stops every track and sink a test opened
before the server goes. SDK units with a microphone or speaker come from ``make_unit`` with a
:class:`CallAudio`; request it after ``probe`` or ``jack_server``, so that the units are gone
before the server stops.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from intercom.audio.microphone import MicrophoneTrack
from intercom.audio.portaudio import PORTAUDIO
from intercom.audio.speaker import SpeakerSink

from ..units import STEP
from .jackkit import JackProbe, JackRoom, JackServer, JackUnavailable, running_jack_server

JACK_SWITCH_INTERVAL = 0.0005  # seconds: see jack_server


@pytest.fixture
async def jack_server(tmp_path: Path) -> AsyncIterator[JackServer]:
    """A jackd dummy sound card (48 kHz, 960-sample periods) that PortAudio's default devices use.

    PortAudio is initialised through our session, so that it knows which server its JACK client
    belongs to; at the end, every stream close asked for is done and PortAudio has let go of a
    server that a test stopped or restarted, before it is terminated.
    """
    switching = sys.getswitchinterval()
    # JACK's threads wait for the GIL behind whatever else holds it in this process (the room's and
    # the probe's callbacks, the units' event loops): at Python's default 5 ms hand-over a cycle
    # runs late now and then and the dummy card drops a block; at 0.5 ms fewer do (measured: a third
    # of audio-test takes lost a block before, none of six after; later runs still lost some).
    sys.setswitchinterval(JACK_SWITCH_INTERVAL)
    try:
        with running_jack_server(tmp_path) as server:
            async with asyncio.timeout(STEP):
                assert await PORTAUDIO.rescan()
            yield server
            async with asyncio.timeout(STEP):
                await PORTAUDIO.settled()
                assert await PORTAUDIO.rescan(), "a stream is still open at the end of the test"
    except JackUnavailable as exc:
        pytest.fail(f"{exc}: run scripts/setup.sh")  # as the browser tests do: a gap in the set-up, not a pass
    finally:
        sys.setswitchinterval(switching)


@pytest.fixture
async def probe(jack_server: JackServer) -> AsyncIterator[JackProbe]:
    probe = JackProbe(jack_server, asyncio.get_running_loop())
    yield probe
    await probe.close()


@pytest.fixture
async def make_room(jack_server: JackServer) -> AsyncIterator[Callable[..., JackRoom]]:
    """Rooms on the JACK card (``JackRoom(jack_server, loop, response, ...)``'s other arguments), closed at teardown."""
    rooms: list[JackRoom] = []

    def make(response: Any, **options: Any) -> JackRoom:
        rooms.append(JackRoom(jack_server, asyncio.get_running_loop(), response, **options))
        return rooms[-1]

    yield make
    for room in rooms:
        await room.close()


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
