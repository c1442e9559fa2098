"""Rates written as settings: `N/S` (at most N in any S-second window) or `off`.

Read by fabric_site/settings.py before Django is set up, so this module imports no
Django; a malformed value is refused with the variable's name and what was expected.
"""

import re
from dataclasses import dataclass

_RATE = re.compile(r"([0-9]+)/([0-9]+)")
OFF = "off"


@dataclass(frozen=True)
class Rate:
    """At most `count` events in any window of `seconds` (windows are aligned on the clock)."""

    count: int
    seconds: int

    def __str__(self) -> str:
        return f"{self.count}/{self.seconds}"


def rate_parse(name: str, text: str) -> Rate | None:
    """The rate `text` spells (None for `off`), or ValueError naming `name`."""
    text = text.strip()
    if text.lower() == OFF:
        return None
    match = _RATE.fullmatch(text)
    if match is None or int(match[1]) < 1 or int(match[2]) < 1:
        raise ValueError(
            f"{name} is a rate N/S (at most N in S seconds, both whole numbers from 1) "
            f"or {OFF!r}, not {text!r}"
        )
    return Rate(count=int(match[1]), seconds=int(match[2]))


JOIN_LIMIT_DEFAULTS = {
    "FABRIC_JOINS_PER_ADDRESS": "300/60",
    "FABRIC_JOINS_PER_KEY": "30/60",
    "FABRIC_NEW_KEYS_PER_ADDRESS": "100/3600",
}
"""The join endpoint's limits (docs/protocol.md §1), each a setting of the same name."""
