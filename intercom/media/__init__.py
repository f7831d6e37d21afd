"""aiortc glue: the peer-connection policy (ICE, jitter), Opus bridging between legs, test tones, and the
call-flow media (speech, sound files, the prompt track, recording).

Every adaptation of aiortc internals lives in :mod:`.aiortc_adaptation`.
"""

from .aiortc_adaptation import AiortcIncompatible, PlayoutStats, check_compatibility, packets_received, playout_of
from .bridge import AudioBridge, bridge_opus_only, offers_opus
from .flow_audio import FlowAudio
from .media_files import MediaError, load_media
from .policy import IceServer, MediaPolicy, ice_servers_from_turn, new_peer_connection
from .recorder import PacketListener, WavRecorder, repair_wav
from .speech import SpeechError, speak
from .tracks import ClickSource, MutableSource, RecordingSink, ToneSource, click_latencies

__all__ = [
    "AiortcIncompatible",
    "AudioBridge",
    "ClickSource",
    "FlowAudio",
    "IceServer",
    "MediaError",
    "MediaPolicy",
    "MutableSource",
    "PacketListener",
    "PlayoutStats",
    "RecordingSink",
    "SpeechError",
    "ToneSource",
    "WavRecorder",
    "bridge_opus_only",
    "check_compatibility",
    "click_latencies",
    "ice_servers_from_turn",
    "load_media",
    "new_peer_connection",
    "offers_opus",
    "packets_received",
    "playout_of",
    "repair_wav",
    "speak",
]
