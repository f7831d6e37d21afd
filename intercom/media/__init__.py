"""aiortc glue: the peer-connection policy (ICE, jitter), Opus bridging between legs, test tones.

Every adaptation of aiortc internals lives in :mod:`.aiortc_adaptation`.
"""

from .aiortc_adaptation import AiortcIncompatible, PlayoutStats, check_compatibility, playout_of
from .bridge import AudioBridge, bridge_opus_only, offers_opus
from .policy import IceServer, MediaPolicy, ice_servers_from_turn, new_peer_connection
from .tracks import ClickSource, MutableSource, RecordingSink, ToneSource, click_latencies

__all__ = [
    "AiortcIncompatible",
    "AudioBridge",
    "ClickSource",
    "IceServer",
    "MediaPolicy",
    "MutableSource",
    "PlayoutStats",
    "RecordingSink",
    "ToneSource",
    "bridge_opus_only",
    "check_compatibility",
    "click_latencies",
    "ice_servers_from_turn",
    "new_peer_connection",
    "offers_opus",
    "playout_of",
]
