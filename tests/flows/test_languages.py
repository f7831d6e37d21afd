"""Every ``say`` language the Voice API names is spoken by an espeak-ng voice of its own, in both
voices: a voice name espeak-ng does not know would quietly fall back to another language."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from intercom.hub.callflows import LANGUAGES
from intercom.media import speak

from ..units import STEP
from .audio import loudness


@pytest.mark.parametrize("language", sorted(LANGUAGES))
async def test_each_language_speaks_and_the_two_voices_differ(tmp_path, language):
    async with asyncio.timeout(STEP):
        female = await speak("Hello, 1 2 3", LANGUAGES[language], "female", tmp_path)
        male = await speak("Hello, 1 2 3", LANGUAGES[language], "male", tmp_path)
    assert loudness(female) > 1000 and loudness(male) > 1000
    assert len(female) != len(male) or not np.array_equal(female, male)
