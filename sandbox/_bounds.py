"""The range each limit field must lie in, and why: one table for the policy model and for lint.

A value outside its range is not the limit it looks like. Docker and the kernel read 0 and -1 as
"unlimited" (memory, CPU quota, pids, tmpfs size, `timeout 0`); Docker refuses a memory limit under
6 MiB and a CPU quota under 0.01 CPU; the kernel rounds a tmpfs up to whole pages; tierlock hands
Inspect whole seconds, so a timeout under 1 s would read as 0 (none); and a value above any host's
resources (a pids limit over the kernel's ceiling, a terabyte of memory) limits nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic_core import PydanticCustomError

from ._units import (
    RANGE_ERROR,
    UNBOUNDED_ERROR,
    GiB,
    KiB,
    MiB,
    TiB,
    format_duration,
    format_size_unit,
)

N = TypeVar("N", int, float)

_WEEK = 7 * 86400.0
PID_MAX_LIMIT = 4_194_304
"""The kernel's ceiling for pid_max (2^22): a pids limit above it limits nothing."""


@dataclass(frozen=True)
class Bound:
    """The smallest and largest meaningful value of one limit field, with the reasons."""

    low: float
    low_why: str
    high: float
    high_why: str
    show: Callable[[Any], str]


def _count(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


BOUNDS: dict[str, Bound] = {
    "limits.memory": Bound(
        6 * MiB, "Docker refuses a memory limit under 6m",
        TiB, "more than any host has: it would limit nothing", format_size_unit,
    ),
    "limits.cpus": Bound(
        0.01, "Docker's smallest CPU quota is 0.01 CPU",
        1024, "more CPUs than any host has: it would limit nothing", _count,
    ),
    "limits.pids": Bound(
        1, "no process could start",
        PID_MAX_LIMIT, "above the kernel's pid_max ceiling it limits nothing", _count,
    ),
    "limits.command_timeout": Bound(
        1, "tierlock passes whole seconds to Inspect: under 1s reads as 0, no timeout",
        _WEEK, "a timeout over a week is none in practice", format_duration,
    ),
    "limits.output_bytes": Bound(
        KiB, "an output cap under 1k truncates every error message",
        GiB, "an output cap over 1g is none in practice (the sample's memory is the limit)",
        format_size_unit,
    ),
    "limits.sample_time": Bound(
        1, "tierlock passes whole seconds to Inspect: under 1s reads as 0, no time limit",
        _WEEK, "a sample time over a week is none in practice", format_duration,
    ),
    "filesystem.writable.size": Bound(
        4 * KiB, "the kernel rounds a tmpfs under one 4k page up",
        TiB, "a tmpfs over 1t caps nothing", format_size_unit,
    ),
}  # fmt: skip
"""Every limit field (key path, list indexes left out) → its range."""


def out_of_range(field: str, value: float) -> tuple[str, str] | None:
    """(pydantic error type, message) when `value` is outside `field`'s range, else None."""
    b = BOUNDS[field]
    if value <= 0:
        return (
            UNBOUNDED_ERROR,
            f"{value:g} would mean no limit (Docker and the kernel read 0 and -1 as "
            f"unlimited); the smallest allowed is {b.show(b.low)}",
        )
    if value < b.low:
        return RANGE_ERROR, f"{b.show(value)} is below the minimum {b.show(b.low)}: {b.low_why}"
    if value > b.high:
        return RANGE_ERROR, f"{b.show(value)} is above the maximum {b.show(b.high)}: {b.high_why}"
    return None


def bounded(field: str) -> Callable[[N], N]:
    """An `AfterValidator` function that refuses values outside `field`'s range."""
    if field not in BOUNDS:
        raise KeyError(field)

    def check(value: N) -> N:
        bad = out_of_range(field, value)
        if bad is not None:
            raise PydanticCustomError(*bad)
        return value

    return check
