"""Make the web desk's committed binary assets: its ring tone and its PWA icons.

Run after changing what they look or sound like: ``python scripts/desk_assets.py``; the files it
writes under intercom/web/desk/ are committed (small), so the build needs neither this script nor
an image library. The ring is the one the units play on their own speaker (intercom.media.tones.RING),
so the phone rings like the desks do.
"""

from __future__ import annotations

import struct
import wave
import zlib
from pathlib import Path

from intercom.media.tones import RING, tone_pcm

DESK = Path(__file__).resolve().parents[1] / "intercom" / "web" / "desk"
RING_RATE = 16000  # the trill's 1120 Hz with room to spare; a loop of one cadence is ~100 kB
RING_AMPLITUDE = 0.5
ICON_SIZES = (192, 512)
BACKGROUND = (0x1F, 0x3A, 0x5F)
FOREGROUND = (0xFF, 0xFF, 0xFF)


def write_ring(path: Path) -> None:
    samples = tone_pcm(RING, RING.period, samplerate=RING_RATE, amplitude=RING_AMPLITUDE)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RING_RATE)
        out.writeframes(samples.astype("<i2").tobytes())


def icon_pixel(x: float, y: float) -> tuple[int, int, int]:
    """A door (a tall rectangle with a knob) inside the maskable icon's safe circle (x, y in 0..1)."""
    in_door = 0.34 <= x <= 0.66 and 0.24 <= y <= 0.76
    in_panel = 0.38 <= x <= 0.62 and 0.28 <= y <= 0.76
    in_knob = (x - 0.565) ** 2 + (y - 0.52) ** 2 <= 0.022**2
    return FOREGROUND if (in_door and not in_panel) or in_knob else BACKGROUND


def png(size: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(
        b"\x00" + b"".join(bytes(icon_pixel((col + 0.5) / size, (row + 0.5) / size)) for col in range(size))
        for row in range(size)
    )
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


def main() -> None:
    write_ring(DESK / "ring.wav")
    for size in ICON_SIZES:
        (DESK / "icons" / f"icon-{size}.png").write_bytes(png(size))


if __name__ == "__main__":
    main()
