"""Reading a policy file and its `extends` chain: a bounded read of a regular file, each parent
resolved against its child's directory (no cycles, at most `MAX_EXTENDS_DEPTH` files), merged
field by field with the child winning, and the positions of what each file set kept."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._errors import Location, Problem, display_path
from ._loader_messages import describe_value, value_kind
from ._loader_positions import KeyPath, Span, one_line, resolved
from ._loader_yaml import LoadProblems, line_col, mark_location, parse_yaml
from ._userfile import kind_of

MAX_EXTENDS_DEPTH = 16
MAX_POLICY_BYTES = 1024**2
"""Largest policy file read (the shipped ones are under 2 KiB)."""


def _deep_merge(parent: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """Child overrides parent field by field: mappings merge recursively, anything else replaces."""
    out = dict(parent)
    for k, v in child.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def _shadowed(child: dict[str, Any], path: KeyPath) -> bool:
    """Whether the child file sets `path` itself, or replaces an ancestor of it wholesale."""
    node: Any = child
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
        if not isinstance(node, dict):
            return True
    return True


@dataclass
class RawPolicy:
    data: dict[str, Any]
    spans: dict[KeyPath, Span]
    files: list[Path]
    texts: list[str]
    """The text read from each of `files`, exactly as parsed (what the load cache compares)."""
    extends: list[str | None]
    """Each file's `extends` value as written (None for the last): the chain's links."""


def read_policy_text(path: Path, file: str) -> str:
    try:
        st = path.stat()
        kind = kind_of(st.st_mode)  # a FIFO would block, /dev/zero never end
        if kind is not None and kind != "a directory":
            raise LoadProblems([Problem(Location(file), f"it is {kind}, not a policy file")])
        if st.st_size > MAX_POLICY_BYTES:
            raise LoadProblems(
                [
                    Problem(
                        Location(file),
                        f"larger than {MAX_POLICY_BYTES // 1024**2} MiB, not a policy",
                    )
                ]
            )
        with path.open("rb") as f:
            raw = f.read(MAX_POLICY_BYTES + 1)  # a file growing while read stops here too
        if len(raw) > MAX_POLICY_BYTES:
            raise LoadProblems(
                [
                    Problem(
                        Location(file),
                        f"larger than {MAX_POLICY_BYTES // 1024**2} MiB, not a policy",
                    )
                ]
            )
    except FileNotFoundError:
        raise LoadProblems([Problem(Location(file), "no such file")]) from None
    except IsADirectoryError:
        raise LoadProblems([Problem(Location(file), "is a directory, not a policy file")]) from None
    except OSError as e:
        raise LoadProblems([Problem(Location(file), f"cannot read: {e.strerror or e}")]) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line, col = line_col(raw[: e.start].decode("utf-8", "replace"), e.start)
        raise LoadProblems([Problem(Location(file, line, col), "not UTF-8 text")]) from None


def load_raw(path: Path, chain: list[Path], soft: list[Problem], text: str | None = None) -> RawPolicy:
    file = display_path(path)
    if text is None:
        text = read_policy_text(path, file)
    data, spans, root = parse_yaml(text, file, soft)
    if not isinstance(data, dict):
        # never the value itself: the file may be anything (`extends: /etc/passwd`)
        kind = "a list" if isinstance(data, list) else f"a single value ({value_kind(data)})"
        raise LoadProblems(
            [
                Problem(
                    mark_location(file, root.start_mark if root else None),
                    "the top level must be a mapping of policy keys "
                    f"(name, tier, network, ...), not {kind}",
                )
            ]
        )
    ext = data.get("extends")
    if ext is None:
        return RawPolicy(data, spans, [path], [text], [None])
    ext_span = spans[("extends",)]
    ext_loc = Location(file, ext_span.line, ext_span.column, "extends")
    if not isinstance(ext, str) or not ext.strip():
        raise LoadProblems(
            [Problem(ext_loc, f"expected the path of a parent policy file, got {describe_value(ext)}")]
        )
    parent = resolved(path.parent / ext)
    here = [resolved(p) for p in (*chain, path)]
    if parent in here:
        cycle = " → ".join(display_path(p) for p in [*here[here.index(parent) :], parent])
        raise LoadProblems([Problem(ext_loc, f"`extends` cycle: {cycle}")])
    if len(here) >= MAX_EXTENDS_DEPTH:
        raise LoadProblems(
            [Problem(ext_loc, f"`extends` chain longer than {MAX_EXTENDS_DEPTH} files")]
        )
    if not parent.is_file():
        if parent.is_dir():
            what = "is a directory"
        elif os.path.lexists(parent):
            what = "is not a regular file (a symlink loop, a dangling link or a device?)"
        else:
            what = "does not exist"
        raise LoadProblems(
            [
                Problem(
                    ext_loc,
                    f"parent policy {one_line(repr(ext))} {what} "
                    f"(looked for {display_path(parent)})",
                )
            ]
        )
    base = load_raw(parent, [*chain, path], soft)
    base.data.pop("extends", None)
    merged_spans = {
        p: s for p, s in base.spans.items() if p != ("extends",) and not _shadowed(data, p)
    }
    merged_spans.update(spans)
    return RawPolicy(
        _deep_merge(base.data, data),
        merged_spans,
        [path, *base.files],
        [text, *base.texts],
        [ext, *base.extends],
    )
