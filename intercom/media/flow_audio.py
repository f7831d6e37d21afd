"""What a caller hears while a call flow talks to it: prompts one after another, digital silence between."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import av
import numpy as np

from .tracks import AUDIO_PEAK, FRAME_SAMPLES, PacedTrack, audio_frame

SILENCE = np.zeros(FRAME_SAMPLES, dtype=np.int16)
SILENCE.flags.writeable = False


@dataclass(eq=False)
class _Prompt:
    samples: np.ndarray
    done: asyncio.Future[bool]
    position: int = 0


class FlowAudio(PacedTrack):
    """The one track the hub sends a caller during a call flow: 20 ms frames of 48 kHz mono s16.

    Frames keep coming whether or not a prompt plays, so the caller's RTP and playout never pause
    between steps. ``on_frame``, when set, is called with each frame's samples as it goes out (the
    hub records what the caller hears); ``first_audio_at`` is the monotonic time of the first prompt
    frame loud enough to count as audio, by the same measure as :class:`RecordingSink`'s.
    """

    def __init__(self) -> None:
        super().__init__()
        self.on_frame: Callable[[np.ndarray], None] | None = None
        self.first_audio_at: float | None = None
        self._prompts: deque[_Prompt] = deque()

    @property
    def playing(self) -> bool:
        """Whether a prompt plays now or waits its turn."""
        return bool(self._prompts)

    async def play(self, samples: np.ndarray) -> bool:
        """Play ``samples`` (48 kHz mono int16) after those already playing or waiting.

        True once the last of them has gone out, False if :meth:`interrupt` or :meth:`stop` came
        first. Cancelling the call takes the prompt off at once, like an interruption.
        """
        if self.readyState != "live":
            return False
        prompt = _Prompt(np.asarray(samples, dtype=np.int16).reshape(-1), asyncio.get_running_loop().create_future())
        self._prompts.append(prompt)
        try:
            return await prompt.done
        finally:
            if prompt in self._prompts:
                self._prompts.remove(prompt)

    def interrupt(self) -> None:
        """Silence from the next frame on; the prompt playing and those waiting return False."""
        while self._prompts:
            prompt = self._prompts.popleft()
            if not prompt.done.done():
                prompt.done.set_result(False)

    def stop(self) -> None:
        super().stop()
        self.interrupt()

    async def recv(self) -> av.AudioFrame:
        pts = await self._next_pts()
        samples = self._next_samples()
        if samples is None:
            samples = SILENCE
        elif self.first_audio_at is None and np.abs(samples).max() >= AUDIO_PEAK:
            self.first_audio_at = time.monotonic()
        if self.on_frame is not None:
            self.on_frame(samples)
        return audio_frame(samples, pts)

    def _next_samples(self) -> np.ndarray | None:
        """The next frame of the prompt playing, its last one padded with silence; None when none plays."""
        while self._prompts:
            prompt = self._prompts[0]
            if prompt.done.done():  # cancelled by its caller, who has yet to take it off
                self._prompts.popleft()
                continue
            samples = prompt.samples[prompt.position : prompt.position + FRAME_SAMPLES]
            prompt.position += FRAME_SAMPLES
            if prompt.position >= len(prompt.samples):
                self._prompts.popleft()
                prompt.done.set_result(True)
            if len(samples) == FRAME_SAMPLES:
                return samples
            if len(samples):
                return np.concatenate([samples, SILENCE[len(samples) :]])
        return None
