"""Streaming a `.json` Inspect log without trusting it: top-level values and the samples array.

ijson's prefix-tracking APIs (`kvitems`, `items`) build a path string per event, so a file of
nested brackets costs quadratic time (200 kB took minutes). Here the flat `basic_parse` events
are routed by hand, nesting deeper than `MAX_DEPTH` is refused, and only the values asked for
are built (`ijson.common.ObjectBuilder`); everything else is skipped as it streams past.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, BinaryIO

import ijson
from ijson.common import ObjectBuilder

MAX_DEPTH = 256
"""Nesting depth of a JSON log (Inspect's logs stay under ~30)."""

_OPEN = ("start_map", "start_array")
_CLOSE = ("end_map", "end_array")


class JsonRefused(ValueError):
    """A JSON log that is malformed or too deeply nested (one line)."""


def _events(f: BinaryIO) -> Iterator[tuple[str, Any]]:
    depth = 0
    try:
        for event, value in ijson.basic_parse(f, use_float=True):
            if event in _OPEN:
                depth += 1
                if depth > MAX_DEPTH:
                    raise JsonRefused(f"JSON nested deeper than {MAX_DEPTH} levels")
            elif event in _CLOSE:
                depth -= 1
            yield event, value
    except (ijson.JSONError, ijson.IncompleteJSONError) as e:
        raise JsonRefused(" ".join(str(e).split())[:200]) from None


def _value(first: tuple[str, Any], events: Iterator[tuple[str, Any]], build: bool) -> Any:
    """The value that starts with event `first` (built, or skipped when `build` is false)."""
    builder = ObjectBuilder() if build else None
    depth = 0
    event, value = first
    while True:
        if builder is not None:
            builder.event(event, value)
        depth += event in _OPEN
        depth -= event in _CLOSE
        if depth == 0:
            return builder.value if builder is not None else None
        try:
            event, value = next(events)
        except StopIteration:
            raise JsonRefused("unexpected end of file") from None


def _top(events: Iterator[tuple[str, Any]]) -> Iterator[tuple[str, tuple[str, Any]]]:
    """(key, first event of its value) for each top-level key; the caller consumes the value."""
    first = next(events, None)
    if first is None:
        raise JsonRefused("empty file")
    if first[0] != "start_map":
        raise JsonRefused("the top level is not a JSON object")
    for event, value in events:
        if event == "end_map":
            return
        if event != "map_key":  # cannot happen in valid JSON at this depth
            raise JsonRefused(f"unexpected {event} at the top level")
        start = next(events, None)
        if start is None:
            raise JsonRefused("unexpected end of file")
        yield str(value), start


def top_values(f: BinaryIO, keys: set[str], stop_at: str) -> dict[str, Any]:
    """The top-level values named in `keys`, reading no further than key `stop_at`."""
    events = _events(f)
    out: dict[str, Any] = {}
    for key, start in _top(events):
        if key == stop_at:
            break
        value = _value(start, events, build=key in keys)
        if key in keys:
            out[key] = value
        if len(out) == len(keys):
            break
    return out


def array_items(f: BinaryIO, key: str) -> Iterator[Any]:
    """Each item of the top-level array `key`, built one at a time."""
    events = _events(f)
    for name, start in _top(events):
        if name != key:
            _value(start, events, build=False)
            continue
        if start[0] != "start_array":
            raise JsonRefused(f"{key} is not an array")
        for item in events:
            if item[0] == "end_array":
                return
            yield _value(item, events, build=True)
        raise JsonRefused("unexpected end of file")
