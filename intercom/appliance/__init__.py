"""The appliance: the GPIO panel (buttons, keypad, LEDs, relay) and the LED patterns it shows."""

from .lights import CALL_STATUS_PATTERN, CLIENT_STATUS_PATTERN, MUTED_PATTERN, PATTERNS, Lights
from .panel import Panel, PanelPins

__all__ = [
    "CALL_STATUS_PATTERN",
    "CLIENT_STATUS_PATTERN",
    "MUTED_PATTERN",
    "PATTERNS",
    "Lights",
    "Panel",
    "PanelPins",
]
