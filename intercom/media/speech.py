"""Text to speech for call flows' ``say`` steps: espeak-ng, its prompts cached on disk and in memory.

A flow says the same few prompts over and over. Each is made once by espeak-ng and kept under
``cache_dir`` as espeak's own WAV, named by a hash of voice and text; the last
:data:`MEMORY_PROMPTS` said stay decoded in memory, so saying one again costs neither a process nor
a read. Calls that ask for a prompt while espeak-ng is still making it share that one run.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Literal

import numpy as np

from .tones import SoundFile, WavError

ESPEAK = "espeak-ng"
VARIANTS = {"male": "m3", "female": "f3"}  # espeak-ng's voice variants appended to the language voice
MEMORY_PROMPTS = 32  # a few MB: a spoken sentence is ~300 KB at 48 kHz
MAX_SPEECH_SECONDS = 600.0  # a say step longer than this is a mistake, not a prompt


class SpeechError(RuntimeError):
    """Text that could not be spoken: espeak-ng is missing, refused the voice, or wrote no audio."""


_memory: OrderedDict[Path, np.ndarray] = OrderedDict()
_making: dict[Path, asyncio.Task[np.ndarray]] = {}


async def speak(text: str, espeak_voice: str, voice: Literal["male", "female"], cache_dir: Path) -> np.ndarray:
    """``text`` spoken by espeak-ng in ``espeak_voice`` (``"en"``, ``"nl"``...) as 48 kHz mono int16.

    The array is the cache's own and read-only. Raises :class:`SpeechError`.
    """
    if voice not in VARIANTS:
        raise ValueError(f"voice is 'male' or 'female', not {voice!r}")
    key = hashlib.sha256(json.dumps([espeak_voice, voice, text]).encode()).hexdigest()
    path = cache_dir / f"{key}.wav"
    samples = _memory.get(path)
    if samples is not None:
        _memory.move_to_end(path)
        return samples
    task = _making.get(path)
    if task is None:
        task = asyncio.create_task(_make(text, espeak_voice, voice, path), name=f"speak({key[:8]})")
        _making[path] = task
        task.add_done_callback(lambda _: _making.pop(path, None))
    # Shielded: a caller that gives up does not take the prompt away from the others waiting for it.
    return await asyncio.shield(task)


async def _make(text: str, espeak_voice: str, voice: str, path: Path) -> np.ndarray:
    if not path.exists():
        await _run_espeak(text, f"{espeak_voice}+{VARIANTS[voice]}", path)
    try:
        samples = (await asyncio.to_thread(SoundFile.read, path, MAX_SPEECH_SECONDS)).pcm
    except WavError as error:
        raise SpeechError(f"espeak-ng's speech for voice {espeak_voice!r} cannot be played: {error}") from error
    samples.flags.writeable = False
    _memory[path] = samples
    while len(_memory) > MEMORY_PROMPTS:
        _memory.popitem(last=False)
    return samples


async def _run_espeak(text: str, espeak_voice: str, path: Path) -> None:
    """Have espeak-ng write ``text`` (given on stdin: never parsed as options) to ``path``, whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, suffix=".part")
    os.close(handle)
    try:
        try:
            process = await asyncio.create_subprocess_exec(
                ESPEAK,
                "-v",
                espeak_voice,
                "-w",
                name,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
        except FileNotFoundError as error:
            raise SpeechError(f"{ESPEAK} is not installed: say steps need it (Debian: apt install {ESPEAK})") from error
        _, stderr = await process.communicate(text.encode())
        # espeak-ng exits 0 when it cannot write the file, and writes nothing for text without words.
        if process.returncode or not os.path.getsize(name):
            reason = stderr.decode(errors="replace").strip() or "it wrote no audio"
            raise SpeechError(f"{ESPEAK} could not speak with voice {espeak_voice!r}: {reason}")
        os.replace(name, path)
    finally:
        Path(name).unlink(missing_ok=True)
