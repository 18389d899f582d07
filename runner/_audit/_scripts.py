"""Scripts written in one call and run in a later one: their content is audited as the run.

`cat > /tmp/a.sh <<EOF … EOF` (or `printf … > f`, or the text editor's `create`) in one call,
`bash /tmp/a.sh` in another: the run is where the action happens, so the call detectors see the
script's content at the call that runs it, with the script named in the explanation. Within one
call this is done by the call view itself (`_view.py`); here the files are remembered across
the calls of a sample, in event order.
"""

from __future__ import annotations

import dataclasses
import posixpath
import weakref
from collections.abc import Callable, Iterable, Iterator

from ._context import SampleContext
from ._hit import Hit
from ._observe import Lang, Obs
from ._view import call_view

MAX_FILES = 256
_FILES: dict[int, tuple[weakref.ref[SampleContext], dict[str, str]]] = {}


def _files(ctx: SampleContext) -> dict[str, str]:
    entry = _FILES.get(id(ctx))
    if entry is None or entry[0]() is not ctx:
        for key in [k for k, (ref, _) in _FILES.items() if ref() is None]:
            del _FILES[key]
        entry = (weakref.ref(ctx), {})
        _FILES[id(ctx)] = entry
    return entry[1]


def _editor_file(obs: Obs) -> tuple[str, str] | None:
    args = obs.data.get("arguments") if isinstance(obs.data, dict) else None
    if isinstance(args, dict) and obs.writes and isinstance(args.get("file_text"), str):
        return obs.writes[0], args["file_text"]
    return None


def scripts_detector(
    detectors: Callable[[], Iterable[Callable[[Obs, SampleContext], Iterable[Hit]]]],
) -> Callable[[Obs, SampleContext], Iterator[Hit]]:
    """A detector that runs `detectors()` (the call detectors) over scripts run by a call."""

    def detect(obs: Obs, ctx: SampleContext) -> Iterator[Hit]:
        if obs.kind != "call":
            return
        files = _files(ctx)
        view = call_view(obs)
        for path, runs in view.runs:
            content = files.get(path)
            if content is None:
                continue
            is_py = runs == "python" or content.startswith("#!/usr/bin/env python")
            lang: Lang = "python" if is_py else "shell"
            script = dataclasses.replace(obs, text=content, lang=lang, writes=[], reads=[])
            for det in detectors():
                for hit in det(script, ctx):
                    yield dataclasses.replace(
                        hit, explanation=f"{hit.explanation} (in {path}, written earlier, run here)"
                    )
        written = dict(view.files)
        if (edited := _editor_file(obs)) is not None:
            written[posixpath.normpath(edited[0])] = edited[1]
        for path, content in written.items():
            if len(files) < MAX_FILES or path in files:
                files[path] = content

    return detect
