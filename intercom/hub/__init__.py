"""The hub: SIP-over-WebSocket registrar (and, later, B2BUA, call flows and Voice API)."""

from .app import create_app
from .bindings import Binding
from .config import HubConfig
from .registrar import Registrar
from .server import RunningHub, run_hub, running_hub
from .storage import Storage, blocking

__all__ = [
    "Binding",
    "HubConfig",
    "Registrar",
    "RunningHub",
    "Storage",
    "blocking",
    "create_app",
    "run_hub",
    "running_hub",
]
