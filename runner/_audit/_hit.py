"""What a detector returns (`Hit`), the detector signature, and quoting evidence (`excerpt`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ._context import SampleContext
from ._findings import Category, Severity
from ._observe import Obs

EXCERPT = 240


@dataclass(frozen=True)
class Hit:
    """What a detector found: the finding without the sample/event it belongs to."""

    rule: str
    category: Category
    severity: Severity
    explanation: str
    excerpt: str


Detector = Callable[[Obs, SampleContext], Iterable[Hit]]


def excerpt(text: str, start: int = 0, end: int | None = None, width: int = EXCERPT) -> str:
    """The text around `text[start:end]`, cut to about `width` characters, on one line."""
    end = start if end is None else end
    if len(text) <= width:
        out = text
    else:
        pad = max(0, (width - (end - start)) // 2)
        lo, hi = max(0, start - pad), min(len(text), max(end, start) + pad)
        out = ("…" if lo else "") + text[lo:hi] + ("…" if hi < len(text) else "")
    return " ".join(out.split())
