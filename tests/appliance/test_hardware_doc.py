"""hardware/README.md's pin map is the settings' defaults: the document and the code cannot drift apart."""

from __future__ import annotations

import re
from pathlib import Path

from intercom.appliance.settings import PIN_FIELDS, Settings

DOC = Path(__file__).resolve().parents[2] / "hardware" / "README.md"
HEADER = {2: 3, 3: 5, 4: 7, 5: 29, 6: 31, 12: 32, 13: 33, 16: 36, 17: 11, 19: 35, 20: 38, 21: 40, 22: 15,
          23: 16, 24: 18, 25: 22, 26: 37, 27: 13}  # fmt: skip  # BCM -> physical pin of the 40-pin header


def test_the_pin_map_table_is_the_settings_defaults():
    rows = re.findall(r"^\| [^|]+ \| `INTERCOM_(\w+)_PIN` \| (\d+) \| (\d+) \|", DOC.read_text(), re.MULTILINE)
    documented = {f"{name.lower()}_pin": (int(bcm), int(header)) for name, bcm, header in rows}
    assert set(documented) == set(PIN_FIELDS)  # every part, once
    for field, (bcm, header) in documented.items():
        assert Settings.model_fields[field].default == bcm, field
        assert HEADER[bcm] == header, field  # the header pin is right for that GPIO
