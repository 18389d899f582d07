"""Human-written sizes (`512m`, `64MiB`) and durations (`30s`, `10m`), parsed strictly.

A size written in a policy file needs a binary unit: `k`/`KiB`, `m`/`MiB`, `g`/`GiB`, `t`/`TiB`
(upper or lower case), or `b` for plain bytes. A bare number is refused there (is `16` sixteen
bytes or 16 MiB?), and so is a decimal-looking `16MB`/`16kb` (Docker reads `mb` as MiB, a reader
as 10^6 bytes). From Python code an `int` is a byte count, as in Docker's API: the loader marks
file input with `FILE_CONTEXT`.

A duration is a number of seconds or a string with `ms`, `s`, `m`, `h` or `d`.

Spellings that mean "no limit" (`unlimited`, `none`, `inf`, `-1`, ...) are refused here with
error type `limit_unbounded`; numeric values (including `0`, `-1` and `0m`) come through as
numbers, and the bounds check of each field (`sandbox._bounds`) refuses what is out of range.
Every error is a `PydanticCustomError` whose type names the lint rule it belongs to
(`ERROR_RULES`), so the loader can tag the problem with it.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, ValidationInfo, WithJsonSchema
from pydantic_core import PydanticCustomError

FILE_CONTEXT = {"tierlock_file": True}
"""Validation context of values read from a file: bare numbers are not sizes there."""

UNIT_ERROR = "limit_unit"
UNBOUNDED_ERROR = "limit_unbounded"
RANGE_ERROR = "limit_range"
ERROR_RULES = {UNIT_ERROR: "limit-unit", UNBOUNDED_ERROR: "limit-range", RANGE_ERROR: "limit-range"}
"""pydantic error type → lint rule id (see `sandbox._lint.RULES`)."""

KiB, MiB, GiB, TiB = 1024, 1024**2, 1024**3, 1024**4
_SIZE_FACTOR = {
    "b": 1, "k": KiB, "m": MiB, "g": GiB, "t": TiB,
    "ki": KiB, "mi": MiB, "gi": GiB, "ti": TiB,
    "kib": KiB, "mib": MiB, "gib": GiB, "tib": TiB,
}  # fmt: skip
SIZE_UNITS = "k/KiB, m/MiB, g/GiB, t/TiB, or b for bytes"
"""The units a size may carry, as said in errors."""

_NUMBER = r"(\d+(?:\.\d+)?|\.\d+)"
_SIZE = re.compile(rf"^{_NUMBER}\s*([a-z]*)$", re.IGNORECASE)
_DECIMAL_UNITS = {"kb": "k", "mb": "m", "gb": "g", "tb": "t"}
_DURATION = re.compile(rf"^{_NUMBER}\s*(ms|s|m|h|d)?$", re.IGNORECASE)
_DURATION_FACTOR = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

UNLIMITED_WORDS = frozenset(
    {"unlimited", "none", "null", "inf", "+inf", "infinity", "+infinity", "max", "nolimit",
     "no-limit", "no limit", "off", "-1", "nan", "-inf", "-infinity"}
)  # fmt: skip
"""Strings people write to mean "no limit": refused for every limit field."""

_MAX_TEXT = 24


def short(value: Any) -> str:
    """A value as quoted in an error: its repr when short; a long one is not quoted at all (it
    may be a line of a file that is not a policy: a password, a key), only its length."""
    text = repr(value)
    if len(text) > _MAX_TEXT:
        what = "text" if isinstance(value, str) else type(value).__name__
        return f"<{what} of {len(str(value))} characters>"
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def kind(value: Any) -> str:
    """A wrong-typed value as quoted in an error: `a list`, `a mapping`, or `short(value)`."""
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return short(value)


def unbounded(value: Any) -> PydanticCustomError:
    """The error for a spelling that would remove a limit."""
    return PydanticCustomError(
        UNBOUNDED_ERROR,
        f"{short(value)} would mean no limit; every limit must be a real, positive value",
    )


def _from_file(info: ValidationInfo | None) -> bool:
    return bool(info is not None and info.context and info.context.get("tierlock_file"))


def _unlimited_word(value: str) -> bool:
    return value.strip().lower() in UNLIMITED_WORDS or value.strip().startswith("-")


def parse_size(value: Any, info: ValidationInfo | None = None) -> int:
    """Bytes from `512m`, `64KiB`, `1.5g`, `4096b` (binary units), or from an int (Python code;
    a bare number in a file is refused). Zero and negative numbers come back as they are, for the
    field's bounds check to refuse; "unlimited" spellings raise here."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size like 512m, got {kind(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise unbounded(value)
    if isinstance(value, int | float):
        if value > 0 and (_from_file(info) or isinstance(value, float)):
            n = f"{value:g}"
            raise PydanticCustomError(
                UNIT_ERROR,
                f"{n} has no unit; write e.g. {n}m or {n}MiB (units: {SIZE_UNITS})",
            )
        return int(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a size like 512m, got {kind(value)}")
    if _unlimited_word(value):
        raise unbounded(value)
    m = _SIZE.match(value.strip())
    if m is None:
        raise PydanticCustomError(
            UNIT_ERROR, f"{short(value)} is not a size; write e.g. 512m or 64KiB ({SIZE_UNITS})"
        )
    number, unit = m.group(1), m.group(2).lower()
    if float(number) == 0:
        return 0  # the bounds check says what 0 means
    if unit in _DECIMAL_UNITS:
        raise PydanticCustomError(
            UNIT_ERROR,
            f"{short(value)} is ambiguous (decimal {unit.upper()} or binary?); write "
            f"{number}{_DECIMAL_UNITS[unit]} or {number}{_DECIMAL_UNITS[unit].upper()}iB "
            f"(units: {SIZE_UNITS})",
        )
    if unit not in _SIZE_FACTOR:
        why = "has no unit" if not unit else f"has an unknown unit {short(m.group(2))}"
        raise PydanticCustomError(
            UNIT_ERROR, f"{short(value)} {why}; write e.g. {number}m (units: {SIZE_UNITS})"
        )
    return int(float(number) * _SIZE_FACTOR[unit])


def _size_field(value: Any, info: ValidationInfo) -> int:
    return parse_size(value, info)


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string like `30s`, `10m`, `1h`, `500ms`, `1d`. Zero and
    negative numbers come back as they are (the bounds check refuses them)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 30s or 10m, got {kind(value)}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise unbounded(value)
        return float(value)
    if isinstance(value, str):
        if _unlimited_word(value):
            raise unbounded(value)
        m = _DURATION.match(value.strip())
        if m:
            return float(m.group(1)) * _DURATION_FACTOR[(m.group(2) or "s").lower()]
    raise PydanticCustomError(
        UNIT_ERROR, f"{kind(value)} is not a duration; write e.g. 30s, 10m or 1h"
    )


def parse_number(value: Any) -> float:
    """A plain number (a CPU count): refuses booleans, text and "unlimited" spellings."""
    if isinstance(value, str) and _unlimited_word(value):
        raise unbounded(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {kind(value)}")
    if not math.isfinite(value):
        raise unbounded(value)
    return float(value)


def parse_count(value: Any) -> int:
    """A whole number (a pids limit): refuses booleans, fractions, text and "unlimited"."""
    if isinstance(value, str) and _unlimited_word(value):
        raise unbounded(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise unbounded(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected a whole number, got {kind(value)}")
    return value


def format_size(n: int) -> str:
    """The shortest exact spelling of a byte count (`512m`, `64k`, `1500`), as Docker and the
    kernel's tmpfs `size=` option read it."""
    for unit in ("t", "g", "m", "k"):
        f = _SIZE_FACTOR[unit]
        if n >= f and n % f == 0:
            return f"{n // f}{unit}"
    return str(n)


def format_size_unit(n: int) -> str:
    """A byte count as a policy file writes it: `format_size`, with `b` on a plain byte count
    (so that `policy show` output loads again)."""
    s = format_size(n)
    return s if not s.lstrip("-").isdigit() else f"{s}b"


def format_duration(s: float) -> str:
    """A short spelling of seconds (`10m`, `30s`, `1.5s`)."""
    for unit in ("h", "m"):
        f = _DURATION_FACTOR[unit]
        if s >= f and s % f == 0:
            return f"{int(s // f)}{unit}"
    return f"{s:g}s"


ByteSize = Annotated[
    int,
    BeforeValidator(_size_field),
    PlainSerializer(format_size_unit, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^\s*(\d+(\.\d+)?|\.\d+)\s*([kmgtKMGT]([iI][bB]?)?|[bB])\s*$",
            "description": f"a size with a binary unit: {SIZE_UNITS}, e.g. 512m or 64MiB",
        }
    ),
]
"""A size in bytes, written as `512m` in policy files."""

Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0},
                {"type": "string", "pattern": r"^\s*(\d+(\.\d+)?|\.\d+)\s*(ms|s|m|h|d)?\s*$"},
            ],
            "description": "seconds, or a duration like 30s, 10m, 1h",
        }
    ),
]
"""A duration in seconds, written as `30s` in policy files."""
