"""Peer connections on 127.0.0.1 for the media tests, and a kit that closes them and checks for leftovers."""

from __future__ import annotations

import asyncio
import threading

from aiortc import RTCPeerConnection
from aiortc.mediastreams import MediaStreamTrack

from intercom.media import AudioBridge, MediaPolicy, RecordingSink, new_peer_connection

from ..conftest import STEP

ENDPOINT = MediaPolicy(host_addresses=["127.0.0.1"], ice_servers=[], jitter_frames=1)
HUB = MediaPolicy(host_addresses=["127.0.0.1"], ice_servers=[], jitter_frames=0)
OUR_TASKS = ("RecordingSink", "AudioBridge")  # names of the tasks intercom.media starts


async def negotiate(
    offerer: RTCPeerConnection, answerer: RTCPeerConnection, answer_with: MediaStreamTrack | None = None
) -> None:
    """Offer/answer between two peer connections in this process; ``answer_with`` is the answerer's audio."""
    async with asyncio.timeout(STEP):
        await offerer.setLocalDescription(await offerer.createOffer())
    async with asyncio.timeout(STEP):
        await answerer.setRemoteDescription(offerer.localDescription)
    if answer_with is not None:
        answerer.addTrack(answer_with)
    async with asyncio.timeout(STEP):
        await answerer.setLocalDescription(await answerer.createAnswer())
    async with asyncio.timeout(STEP):
        await offerer.setRemoteDescription(answerer.localDescription)


def remote_audio(pc: RTCPeerConnection) -> MediaStreamTrack:
    track = next(t for t in pc.getTransceivers() if t.kind == "audio").receiver.track
    assert track is not None, "no remote audio track: negotiate first"
    return track


def decoder_threads() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if thread.name.endswith("-decoder")}


class MediaKit:
    """Builds what a test needs and takes it all down again, in the order a hub or client would."""

    def __init__(self) -> None:
        self.pcs: list[RTCPeerConnection] = []
        self.sinks: list[RecordingSink] = []
        self.bridges: list[AudioBridge] = []
        self.tasks_before = asyncio.all_tasks()
        self.decoders_before = decoder_threads()

    def pc(self, policy: MediaPolicy = ENDPOINT, *, opus_passthrough: bool = False) -> RTCPeerConnection:
        pc = new_peer_connection(policy, opus_passthrough=opus_passthrough)
        self.pcs.append(pc)
        return pc

    def sink(self, pc: RTCPeerConnection) -> RecordingSink:
        sink = RecordingSink(remote_audio(pc))
        sink.start()
        self.sinks.append(sink)
        return sink

    def bridge(self, leg_a: RTCPeerConnection, leg_b: RTCPeerConnection) -> AudioBridge:
        bridge = AudioBridge(leg_a, leg_b)
        bridge.start()
        self.bridges.append(bridge)
        return bridge

    async def close(self) -> None:
        for bridge in self.bridges:
            async with asyncio.timeout(STEP):
                await bridge.stop()
        for sink in self.sinks:
            async with asyncio.timeout(STEP):
                await sink.stop()
        for pc in self.pcs:
            async with asyncio.timeout(STEP):
                await pc.close()

    async def leftovers(self) -> tuple[list[asyncio.Task[object]], set[threading.Thread]]:
        """Tasks started since the kit was made that are still running, and decoder threads still alive.

        Tasks of ours must be gone as soon as their stop() returns. aiortc's connect task may
        still be winding down an ICE check when close() returns (aioice ends it within 20 ms):
        those get up to STEP seconds to finish.
        """
        tasks = [task for task in asyncio.all_tasks() if task not in self.tasks_before and not task.done()]
        tasks = [task for task in tasks if task is not asyncio.current_task()]
        ours = [task for task in tasks if task.get_name().startswith(OUR_TASKS)]
        if tasks:
            await asyncio.wait(tasks, timeout=STEP)
        still = [task for task in tasks if not task.done()]
        return ours + [task for task in still if task not in ours], decoder_threads() - self.decoders_before
