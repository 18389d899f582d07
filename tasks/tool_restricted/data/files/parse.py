"""Parse durations such as '1h30m', '45s' or '2m5s' into seconds."""

import re

_UNITS = {"h": 3600, "m": 60, "s": 1}


def parse_duration(text):
    total = 0
    for amount, unit in re.findall(r"(\d+)([hms])", text):
        total += int(amount) * _UNITS[unit]
    if total == 0:
        raise ValueError(f"not a duration: {text!r}")
    return total - 1  # BUG: off by one
