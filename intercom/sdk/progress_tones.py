"""Call-progress tones on the unit's own speaker: ringback, the ring, busy or congestion, key feedback.

Each tone is a track played through a sink from the call's ``CallAudio.sink`` factory, so it sounds
where the far end would and never travels over the network. One :class:`ProgressTones` serves a
client: a failure tone outlives its call by a few seconds, and ``Client.destroy()`` must still be
able to silence it. Every tone is stopped, and its sink closed, before the call's own sink opens:
on ALSA a hardware device can be opened only once. A key's feedback is mixed into the call's sink.

Which failures sound busy, after the meaning RFC 3261 (section 21) gives each final response:
486 Busy Here, 600 Busy Everywhere and 603 Decline, where the far end was reached and is engaged or
refused the call. Everything else sounds congestion (the call could not be put through): 480
Temporarily Unavailable included, which is what the hub answers when nobody answered in time or
nobody is registered, and what a callee's ``reject()`` sends, as the browser client does.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import replace

from aiortc import MediaStreamTrack

from ..media.tones import Tone, TonePlan, ToneTrack, WavTrack, tone_pcm
from .media import AudioSink, CallAudio

log = logging.getLogger(__name__)

BUSY_CODES = frozenset({486, 600, 603})
FAILURE_TONE_SECONDS = 3.0  # at least this long, in whole rounds of the cadence


class Playing:
    """One tone sounding: ``track`` read by ``sink`` until :meth:`stop`."""

    def __init__(self, sink: AudioSink, track: MediaStreamTrack, on_stopped: Callable[[Playing], None]) -> None:
        self._sink = sink
        self._track = track
        self._on_stopped = on_stopped
        self._stopping: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def stop_after(self, seconds: float) -> None:
        self._timer = asyncio.get_running_loop().call_later(seconds, self._begin_stop)

    async def stop(self) -> None:
        """Silence the tone and close its sink; returns once the device is free, however often called."""
        await asyncio.shield(self._begin_stop())

    def _begin_stop(self) -> asyncio.Task[None]:
        if self._stopping is None:
            if self._timer is not None:
                self._timer.cancel()
            self._stopping = asyncio.get_running_loop().create_task(self._stop(), name=f"tone-stop({self._track.id})")
        return self._stopping

    async def _stop(self) -> None:
        try:
            await self._sink.stop()
        finally:
            self._track.stop()
            self._on_stopped(self)


class ProgressTones:
    """The tones of one client's calls, each played with the ``CallAudio`` of its call."""

    def __init__(self) -> None:
        self._playing: set[Playing] = set()
        self._closed = False

    def ringback(self, audio: CallAudio) -> Playing | None:
        """Start the ringback a caller hears while the far end rings; None if tones are off."""
        plan = audio.tones
        return None if plan is None else self._play(audio, ToneTrack(plan.ringback))

    def ring(self, audio: CallAudio) -> Playing | None:
        """Start the ring of an incoming call: the settings' sound file, else the plan's ring. None if tones are off."""
        plan = audio.tones
        if plan is None:
            return None
        return self._play(audio, WavTrack(audio.ring) if audio.ring is not None else ToneTrack(plan.ring))

    def failure(self, audio: CallAudio, status_code: int | None) -> None:
        """Sound busy or congestion for a call that failed with ``status_code`` (None: no response at
        all) for :data:`FAILURE_TONE_SECONDS` or a little more; it stops by itself."""
        if audio.tones is None:
            return
        tone = whole_rounds(failure_tone(audio.tones, status_code), FAILURE_TONE_SECONDS)
        playing = self._play(audio, ToneTrack(tone))
        if playing is not None:
            playing.stop_after(tone.period)

    def key(self, audio: CallAudio, sink: AudioSink, digit: str) -> None:
        """Mix the feedback tone of DTMF ``digit`` into ``sink``, over the far end's audio."""
        if audio.tones is not None and not self._closed:
            tone = audio.tones.digit(digit)
            sink.mix(tone_pcm(tone, tone.period))

    async def close(self) -> None:
        """Silence every tone, and play none from now on: calls that fail later do so quietly."""
        self._closed = True
        await asyncio.gather(*(playing.stop() for playing in list(self._playing)))

    def _play(self, audio: CallAudio, track: MediaStreamTrack) -> Playing | None:
        if self._closed:
            track.stop()
            return None
        try:
            sink = audio.sink(track)
            sink.start()
        except Exception as exc:  # a tone is a courtesy: a speaker that cannot play one must not break the call
            log.warning("cannot play a tone: %s", exc)
            track.stop()
            return None
        playing = Playing(sink, track, self._playing.discard)
        self._playing.add(playing)
        return playing


def failure_tone(plan: TonePlan, status_code: int | None) -> Tone:
    """Busy for a far end that is engaged or declined (see the module's docstring), else congestion."""
    return plan.busy if status_code in BUSY_CODES else plan.congestion


def whole_rounds(tone: Tone, seconds: float) -> Tone:
    """``tone`` played once for the fewest whole rounds of its cadence lasting ``seconds``, then silent."""
    rounds = max(1, math.ceil(seconds / tone.period - 1e-9))  # 3 s is 3.0 rounds of a 1 s cadence, not 4
    return replace(tone, cadence=tone.cadence * rounds, repeat=False)
