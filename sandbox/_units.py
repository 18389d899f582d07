"""Human-written sizes (`512m`, `1g`, `64k`) and durations (`30s`, `10m`)."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_SIZE_FACTOR = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$", re.IGNORECASE)
_DURATION_FACTOR = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_size(value: Any) -> int:
    """Bytes from an int or a string like `512m`, `1g`, `64k`, `2GiB` (binary units)."""
    if isinstance(value, bool):
        raise ValueError("expected a size like 512m, 1g or 64k")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    if isinstance(value, str):
        m = _SIZE.match(value)
        if m:
            return int(float(m.group(1)) * _SIZE_FACTOR[m.group(2).lower()])
    raise ValueError(f"{value!r} is not a size; write e.g. 512m, 1g or 64k")


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string like `30s`, `10m`, `1h`, `500ms`."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 30s or 10m")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        if not math.isfinite(value):
            raise ValueError("a duration must be a finite number")
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m.group(1)) * _DURATION_FACTOR[(m.group(2) or "s").lower()]
    raise ValueError(f"{value!r} is not a duration; write e.g. 30s, 10m or 1h")


def format_size(n: int) -> str:
    """The shortest exact spelling of a byte count (`512m`, `64k`, `1500`)."""
    for unit in ("t", "g", "m", "k"):
        f = _SIZE_FACTOR[unit]
        if n >= f and n % f == 0:
            return f"{n // f}{unit}"
    return str(n)


def format_duration(s: float) -> str:
    """A short spelling of seconds (`10m`, `30s`, `1.5s`)."""
    for unit in ("h", "m"):
        f = _DURATION_FACTOR[unit]
        if s >= f and s % f == 0:
            return f"{int(s // f)}{unit}"
    return f"{s:g}s"


ByteSize = Annotated[
    int,
    BeforeValidator(parse_size),
    PlainSerializer(format_size, return_type=str, when_used="json"),
    WithJsonSchema(
        {"anyOf": [{"type": "integer", "minimum": 0},
                   {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*[kmgtKMGT]?[iI]?[bB]?\s*$"}],
         "description": "bytes, or a size like 512m, 1g, 64k"}
    ),
]
"""A size in bytes, written as `512m` in policy files."""

Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema(
        {"anyOf": [{"type": "number", "minimum": 0},
                   {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h)?\s*$"}],
         "description": "seconds, or a duration like 30s, 10m, 1h"}
    ),
]
"""A duration in seconds, written as `30s` in policy files."""
