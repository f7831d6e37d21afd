"""The unit's side of deploy/image/powercut.sh, run inside the booted image by its own Python
(``ssh ... /opt/intercom/current/bin/python - door|check ... < powercut_vm.py``).

``door ENV_FILE [--hang-up-after S]``: a door unit (the env file's key and identity, a test tone
for a microphone) presses CALL on the embedded hub of the image's desk; nobody answers, so the
hub's ``ring_desks`` flow records a voicemail. It prints one line per milestone (``connected``,
``calling``, ``recording <id>`` once the hub's recording file is there; with --hang-up-after,
``kept <id>`` once it has hung up and the call log has the recording done) and, without it, stays
in the call until the power is cut.

``check DATA_DIR``: one JSON line about the hub's data after a boot: SQLite's integrity check,
the voicemails in the call log and whether each file is there and plays (a WAV header and
frames), the ones still marked as recording (the hub's start repairs them), and the recording files
no row of the call log names.

Not part of the package: only the image's power-cut test runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import time
import wave
from pathlib import Path

from intercom.appliance.settings import load_settings
from intercom.appliance.unit import Unit
from intercom.hub.storage import DATABASE_NAME
from intercom.media import MediaPolicy, RecordingSink, ToneSource
from intercom.sdk import CallAudio, ClientStatus

CONNECT_TIMEOUT_S = 300  # an emulated unit just after boot is slow
DOOR_TONE_HZ = 440.0  # the simulator's door tone (its tone_audio needs textual, which a unit lacks)
RECORDING_TIMEOUT_S = 300  # the ring timeout, the spoken message (espeak, emulated), then the recording
POLL_S = 0.2  # a file appearing has no event to wait on


def say(line: str) -> None:
    print(line, flush=True)


async def until(condition, timeout_s: float, what: str):
    """Poll ``condition`` until it returns something true, for at most ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout_s:.0f} s")
        await asyncio.sleep(POLL_S)
    return result


async def door(env_file: Path, data_dir: Path, hang_up_after_s: float | None) -> None:
    settings, _ = load_settings(env_file)
    tone = CallAudio(source=lambda: ToneSource(DOOR_TONE_HZ), sink=RecordingSink, policy=MediaPolicy(), tones=None)
    unit = Unit(settings, tone)
    folder = data_dir / "recordings"
    before = set(folder.glob("*.wav"))
    try:
        await unit.start()
        await until(lambda: unit.client.status is ClientStatus.CONNECTED, CONNECT_TIMEOUT_S, "connection")
        say("connected")
        call = unit.client.start_call()
        say("calling")
        wav = await until(
            lambda: next(iter(set(folder.glob("*.wav")) - before), None), RECORDING_TIMEOUT_S, "recording"
        )
        say(f"recording {wav.stem}")
        if hang_up_after_s is None:
            await asyncio.Event().wait()  # in the call until the power goes
        await asyncio.sleep(hang_up_after_s)  # the tone goes on meanwhile: a voicemail of that length
        await call.disconnect()
        await until(lambda: recording_status(data_dir, wav.stem) == "done", RECORDING_TIMEOUT_S, "kept recording")
        say(f"kept {wav.stem}")
    finally:
        await unit.stop()


def recordings(data_dir: Path) -> list[dict[str, object]]:
    """The call log's recording rows (as the hub writes them: the row before the file)."""
    database = sqlite3.connect(f"file:{data_dir / DATABASE_NAME}?mode=ro", uri=True)
    try:
        return [json.loads(body) for (body,) in database.execute("SELECT body FROM recordings")]
    finally:
        database.close()


def recording_status(data_dir: Path, recording_id: str) -> str | None:
    """``recording`` while the hub writes it, ``done`` once kept (older rows have no status)."""
    rows = [row for row in recordings(data_dir) if row["id"] == recording_id]
    return str(rows[0].get("status") or "done") if rows else None


def check(data_dir: Path) -> dict[str, object]:
    database = sqlite3.connect(f"file:{data_dir / DATABASE_NAME}?mode=ro", uri=True)
    try:
        integrity = [row[0] for row in database.execute("PRAGMA integrity_check")]
    finally:
        database.close()
    rows = recordings(data_dir)
    playable = []
    for row in rows:
        try:
            with wave.open(str(data_dir / row["path"]), "rb") as file:
                if file.getnframes() > 0:
                    playable.append(row["id"])
        except (OSError, EOFError, wave.Error):
            pass
    return {
        "integrity": "ok" if integrity == ["ok"] else integrity,
        "voicemails": sorted(row["id"] for row in rows if (row.get("status") or "done") == "done"),
        "still_recording": sorted(row["id"] for row in rows if row.get("status") == "recording"),
        "playable": len(playable),
        "orphan_files": sorted(
            path.name for path in (data_dir / "recordings").glob("*") if path.stem not in {row["id"] for row in rows}
        ),  # glob: no folder yet (a first boot) is no file
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="powercut_vm.py")
    commands = parser.add_subparsers(dest="command", required=True)
    door_command = commands.add_parser("door")
    door_command.add_argument("env_file", type=Path)
    door_command.add_argument("--data-dir", type=Path, default=Path("/var/lib/intercom"))
    door_command.add_argument("--hang-up-after", type=float)
    check_command = commands.add_parser("check")
    check_command.add_argument("data_dir", type=Path)
    args = parser.parse_args()
    if args.command == "check":
        say(json.dumps(check(args.data_dir)))
        return 0
    try:
        asyncio.run(door(args.env_file, args.data_dir, args.hang_up_after))
    except TimeoutError as exc:
        say(f"failed: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
