"""The hub's own audio on the leg a call flow talks to: prompts out, the party's voice in.

Once the hub answers a caller itself (a ``say``, ``play``, ``record`` ... step), the leg's sender
sends :class:`~intercom.media.FlowAudio` (prompts, silence between them) and a
:class:`~intercom.media.PacketListener` reads what the party says. When a ``transfer`` bridges the
leg, the bridge takes over both directions, and packets it forwards are decoded only while
something records them. Recorders subscribe to what the party says (``said``) and what the party
hears (``heard``), so one recording may follow a call from prompts into a bridge.
"""

from __future__ import annotations

from collections.abc import Callable

import av
import numpy as np
from aiortc import RTCPeerConnection

from ..media import FlowAudio, PacketListener
from ..media.opus import FrameDecoder, OpusEncodedTrack
from ..media.tracks import mono_samples

Consumer = Callable[[np.ndarray], None]


class FlowMedia:
    def __init__(self, leg: RTCPeerConnection) -> None:
        self.transceiver = next(t for t in leg.getTransceivers() if t.kind == "audio")
        self.audio = FlowAudio()
        self.said: list[Consumer] = []  # what the party says, as 48 kHz int16 frames
        self.heard: list[Consumer] = []  # what the party hears
        self.audio.on_frame = self._hear
        self._listener: PacketListener | None = None
        self._decoders = (FrameDecoder(), FrameDecoder())

    def start(self) -> None:
        """Send the flow's audio and listen to the party (after the leg's answer is made)."""
        self.transceiver.sender.replaceTrack(OpusEncodedTrack(self.audio, lambda: True))
        self._listen()

    def _listen(self) -> None:
        self._listener = PacketListener(self.transceiver.receiver.track)
        self._listener.sink = self._say
        self._listener.start()

    async def hand_to_bridge(self) -> None:
        """Stop reading the party's audio: a bridge is about to read it."""
        if self._listener is not None:
            await self._listener.stop()
            self._listener = None

    def bridge_tap(self, party_side: int) -> Callable[[int, av.Packet], None]:
        """A tap for an :class:`AudioBridge` whose leg ``party_side`` (0: A, 1: B) is this party's."""

        def tap(direction: int, packet: av.Packet) -> None:
            said = direction == party_side
            if not (self.said if said else self.heard):
                return  # nobody records: the packet is forwarded and never decoded
            hand_on = self._say if said else self._hear
            for frame in self._decoders[direction].frames(packet):
                hand_on(mono_samples(frame))

        return tap

    def _say(self, samples: np.ndarray) -> None:
        for consume in list(self.said):
            consume(samples)

    def _hear(self, samples: np.ndarray) -> None:
        for consume in list(self.heard):
            consume(samples)

    async def close(self) -> None:
        self.audio.stop()
        await self.hand_to_bridge()
