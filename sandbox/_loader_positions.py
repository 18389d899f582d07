"""Where each key of a policy was written: key paths (`KeyPath`, `format_key_path`), the `Span` of
a value and its key, and the `PositionIndex` of a whole `extends` chain; plus the small helpers
every policy message uses (`one_line`, `resolved`)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ._errors import Location
from ._units import short

KeyPath = tuple[str | int, ...]
"""A path of keys and list indexes into a policy document, e.g. `("network", "allow", 0)`."""


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]{1,32}")


def format_key_path(path: KeyPath) -> str:
    """`network.allow[0]` for `("network", "allow", 0)`; odd keys quoted: `env['A.B']`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _PLAIN_KEY.fullmatch(part):
            out += f"[{short(part)}]"  # cut: the key of a foreign file may be a secret
        else:
            out += f".{part}" if out else part
    return out


def one_line(text: str) -> str:
    """`text` with control characters escaped, so a problem always prints as one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def resolved(path: Path) -> Path:
    """`path` made absolute with symlinks resolved where they resolve; a symlink loop (which
    `Path.resolve` raises on before Python 3.13) stays as written, for the read to report."""
    try:
        return path.resolve()
    except (RuntimeError, OSError):
        return Path(os.path.abspath(path))


@dataclass(frozen=True)
class Span:
    """Where a value (and its key, if it has one) was written: display path, 1-based line/col."""

    file: str
    line: int
    column: int
    key_line: int
    key_column: int


@dataclass
class PositionIndex:
    """Where each key path of the effective policy was written, across the `extends` chain."""

    file: str
    """The policy file itself (the child): problems with no better place point here."""
    spans: dict[KeyPath, Span] = field(default_factory=dict)

    def span(self, path: KeyPath) -> Span | None:
        """The span of `path`, or of its nearest ancestor that was written in a file."""
        for n in range(len(path), -1, -1):
            s = self.spans.get(path[:n])
            if s is not None:
                return s
        return None

    def locate(self, path: KeyPath, *, at_key: bool = False) -> Location:
        """A `Location` for `path`: the value's position (or the key's, with `at_key`)."""
        key = format_key_path(path)
        exact = self.spans.get(path)
        s = exact or self.span(path)
        if s is None:
            return Location(self.file, key=key)
        if at_key or exact is None:
            return Location(s.file, s.key_line, s.key_column, key)
        return Location(s.file, s.line, s.column, key)
