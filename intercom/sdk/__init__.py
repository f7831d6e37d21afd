"""The client SDK: a Python port of the MessageBird Client SDK."""

from .audio_settings import AudioSettings
from .call import Call, CallStatus, Digits
from .call_stats import CallStats
from .client import Client
from .errors import CertificateError, ClientError, ForbiddenError, InternalError, NotAcceptableError
from .incoming import IncomingCall
from .media import CallAudio
from .media_sources import MediaSources
from .status import ClientStatus

__all__ = [
    "AudioSettings",
    "Call",
    "CallAudio",
    "CallStats",
    "CallStatus",
    "CertificateError",
    "Client",
    "ClientError",
    "ClientStatus",
    "Digits",
    "ForbiddenError",
    "IncomingCall",
    "InternalError",
    "MediaSources",
    "NotAcceptableError",
]
