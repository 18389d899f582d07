"""Load policy files: YAML with positions, `extends`, and errors that name file:line:col and key.

`load_policy(path)` returns the effective `Policy`. `load_policy_file(path)` also returns where each
key was written (`LoadedPolicy.positions`), so lint can point at the offending line, including lines
in a parent file reached through `extends`. Every problem raises `PolicyError` with one `Problem` per
mistake; nothing else escapes (no traceback for a bad file).
"""

from __future__ import annotations

import datetime
import difflib
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml
from pydantic import BaseModel, ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ._errors import Location, PolicyError, Problem, display_path
from ._policy import Policy
from ._units import ERROR_RULES, FILE_CONTEXT, short
from ._userfile import kind_of

KeyPath = tuple[str | int, ...]
"""A path of keys and list indexes into a policy document, e.g. `("network", "allow", 0)`."""

MAX_EXTENDS_DEPTH = 16
MAX_POLICY_BYTES = 1024**2
"""Largest policy file read (the shipped ones are under 2 KiB)."""
_MAX_NODES = 100_000
_MAX_DEPTH = 64
_MERGE_TAG = "tag:yaml.org,2002:merge"
_SEXAGESIMAL_TAGS = {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}
_STD_COLLECTION_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}


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


@dataclass
class LoadedPolicy:
    """A loaded policy with the positions of its keys and the files it came from (child first)."""

    policy: Policy
    positions: PositionIndex
    files: list[Path]

    @property
    def source(self) -> str:
        """The display path of the policy file."""
        return self.positions.file

    def locate(self, path: KeyPath, *, at_key: bool = False) -> Location:
        """Shortcut for `positions.locate`."""
        return self.positions.locate(path, at_key=at_key)

    def __post_init__(self) -> None:
        self._by_name = {display_path(f): f for f in reversed(self.files)}

    def defined_in(self, path: KeyPath) -> Path:
        """The file that set `path` (or its nearest written ancestor): for resolving relative paths."""
        s = self.positions.span(path)
        return self._by_name.get(s.file, self.files[0]) if s is not None else self.files[0]

    def resolve_path(self, path: KeyPath, value: str | Path) -> Path:
        """A path written at `path` (e.g. `process.seccomp`), resolved against the directory of
        the file that set it (relevant with `extends`)."""
        return resolved(self.defined_in(path).parent / value)


# --- YAML → plain data, with positions --------------------------------------------------------


class _Problems(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(problems[0].message if problems else "")
        self.problems = problems


def _mark_location(file: str, mark: Any, key: str = "") -> Location:
    if mark is None:
        return Location(file, key=key)
    return Location(file, mark.line + 1, mark.column + 1, key)


class _Converter:
    """Turns a composed YAML node tree into plain data, recording a `Span` per key path."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.spans: dict[KeyPath, Span] = {}
        self.problems: list[Problem] = []
        self.soft_problems: list[Problem] = []
        """Problems that leave the data well-formed (duplicate keys): validation still runs."""
        self._constructor = yaml.SafeLoader("")
        self._nodes = 0
        self._stack: set[int] = set()

    def _problem(self, node: Node, path: KeyPath, message: str) -> None:
        loc = _mark_location(self.file, node.start_mark, format_key_path(path))
        self.problems.append(Problem(loc, one_line(message)))

    def record(self, path: KeyPath, value: Node, key: Node | None) -> None:
        v, k = value.start_mark, (key or value).start_mark
        self.spans[path] = Span(self.file, v.line + 1, v.column + 1, k.line + 1, k.column + 1)

    def convert(self, node: Node, path: KeyPath = ()) -> Any:
        self._nodes += 1
        if self._nodes > _MAX_NODES:
            raise _Problems(
                [
                    Problem(
                        _mark_location(self.file, node.start_mark),
                        f"document too large (over {_MAX_NODES} YAML nodes, "
                        "e.g. through nested aliases)",
                    )
                ]
            )
        if len(path) > _MAX_DEPTH:
            raise _Problems(
                [
                    Problem(
                        _mark_location(self.file, node.start_mark),
                        f"nested more than {_MAX_DEPTH} levels deep",
                    )
                ]
            )
        if id(node) in self._stack:
            self._problem(node, path, "a YAML alias refers to itself (recursive anchor)")
            return None
        if isinstance(node, ScalarNode):
            if node.tag in _SEXAGESIMAL_TAGS and ":" in node.value:
                return node.value  # YAML 1.1 reads `1000:50` as 60050; policies mean the text
            try:
                return self._constructor.construct_object(node, deep=True)
            except yaml.YAMLError as e:
                what = getattr(e, "problem", None) or str(e)
                self._problem(node, path, f"invalid value: {what}")
                return None
        if node.tag not in _STD_COLLECTION_TAGS:
            self._problem(node, path, f"unsupported YAML tag {node.tag}")
            return None
        self._stack.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                out: list[Any] = []
                for i, item in enumerate(node.value):
                    self.record((*path, i), item, None)
                    out.append(self.convert(item, (*path, i)))
                return out
            assert isinstance(node, MappingNode)
            return self._mapping(node, path)
        finally:
            self._stack.discard(id(node))

    def _mapping(self, node: MappingNode, path: KeyPath) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        own: dict[str, Any] = {}
        first_seen: dict[str, Node] = {}
        # YAML merge keys (`<<: *base`) first, so the mapping's own keys override them.
        for key_node, value_node in node.value:
            if key_node.tag != _MERGE_TAG:
                continue
            if isinstance(value_node, MappingNode):
                sources = [value_node]
            elif isinstance(value_node, SequenceNode):
                sources = list(value_node.value)
            else:
                sources = []
            if not sources or not all(isinstance(s, MappingNode) for s in sources):
                self._problem(value_node, path, "`<<` must merge a mapping or a list of mappings")
                continue
            for src in sources:
                data = self.convert(src, path)
                if isinstance(data, dict):
                    for k, v in data.items():
                        merged.setdefault(k, v)
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            if not isinstance(key_node, ScalarNode):
                self._problem(key_node, path, "keys must be plain words, not lists or mappings")
                continue
            key = str(key_node.value)
            if key in first_seen:
                first = first_seen[key].start_mark
                loc = _mark_location(self.file, key_node.start_mark, format_key_path((*path, key)))
                self.soft_problems.append(
                    Problem(loc, f"duplicate key (first set at line {first.line + 1})")
                )
                continue
            first_seen[key] = key_node
            self.record((*path, key), value_node, key_node)
            own[key] = self.convert(value_node, (*path, key))
        return {**merged, **own}


def _line_col(text: str, offset: int) -> tuple[int, int]:
    before = text[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


def _parse(
    text: str, file: str, soft: list[Problem]
) -> tuple[Any, dict[KeyPath, Span], Node | None]:
    """Plain data, spans, and the root node of one YAML document; raises `_Problems`.

    Problems that do not stop validation (duplicate keys) are appended to `soft`.
    """
    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as e:
        what = ", ".join(str(w) for w in (e.context, e.problem) if w) or "malformed YAML"
        mark = e.problem_mark or e.context_mark
        raise _Problems(
            [Problem(_mark_location(file, mark), one_line(f"invalid YAML: {what}"))]
        ) from None
    except yaml.reader.ReaderError as e:
        line, col = _line_col(text, e.position)
        char = f"#x{e.character:04x}" if isinstance(e.character, int) else repr(e.character)
        raise _Problems(
            [Problem(Location(file, line, col), f"invalid YAML: character {char} is not allowed")]
        ) from None
    except yaml.YAMLError as e:  # not marked: its text may quote the source, so name it only
        raise _Problems([Problem(Location(file), f"invalid YAML ({type(e).__name__})")]) from None
    except RecursionError:
        raise _Problems([Problem(Location(file), "invalid YAML: nested too deeply")]) from None
    finally:
        if loader is not None:
            loader.dispose()
    if root is None:
        raise _Problems(
            [
                Problem(
                    Location(file, 1, 1),
                    "the file is empty; a policy needs at least `name` and `tier`",
                )
            ]
        )
    conv = _Converter(file)
    conv.record((), root, None)
    data = conv.convert(root)
    if conv.problems:
        raise _Problems(conv.problems + conv.soft_problems)
    soft.extend(conv.soft_problems)
    return data, conv.spans, root


# --- extends ----------------------------------------------------------------------------------


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
class _Raw:
    data: dict[str, Any]
    spans: dict[KeyPath, Span]
    files: list[Path]


def _read(path: Path, file: str) -> str:
    try:
        st = path.stat()
        kind = kind_of(st.st_mode)  # a FIFO would block, /dev/zero never end
        if kind is not None and kind != "a directory":
            raise _Problems([Problem(Location(file), f"it is {kind}, not a policy file")])
        if st.st_size > MAX_POLICY_BYTES:
            raise _Problems(
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
            raise _Problems(
                [
                    Problem(
                        Location(file),
                        f"larger than {MAX_POLICY_BYTES // 1024**2} MiB, not a policy",
                    )
                ]
            )
    except FileNotFoundError:
        raise _Problems([Problem(Location(file), "no such file")]) from None
    except IsADirectoryError:
        raise _Problems([Problem(Location(file), "is a directory, not a policy file")]) from None
    except OSError as e:
        raise _Problems([Problem(Location(file), f"cannot read: {e.strerror or e}")]) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line, col = _line_col(raw[: e.start].decode("utf-8", "replace"), e.start)
        raise _Problems([Problem(Location(file, line, col), "not UTF-8 text")]) from None


def _load_raw(path: Path, chain: list[Path], soft: list[Problem], text: str | None = None) -> _Raw:
    file = display_path(path)
    if text is None:
        text = _read(path, file)
    data, spans, root = _parse(text, file, soft)
    if not isinstance(data, dict):
        # never the value itself: the file may be anything (`extends: /etc/passwd`)
        kind = "a list" if isinstance(data, list) else f"a single value ({_kind(data)})"
        raise _Problems(
            [
                Problem(
                    _mark_location(file, root.start_mark if root else None),
                    "the top level must be a mapping of policy keys "
                    f"(name, tier, network, ...), not {kind}",
                )
            ]
        )
    ext = data.get("extends")
    if ext is None:
        return _Raw(data, spans, [path])
    ext_span = spans[("extends",)]
    ext_loc = Location(file, ext_span.line, ext_span.column, "extends")
    if not isinstance(ext, str) or not ext.strip():
        raise _Problems(
            [Problem(ext_loc, f"expected the path of a parent policy file, got {_describe(ext)}")]
        )
    parent = resolved(path.parent / ext)
    here = [resolved(p) for p in (*chain, path)]
    if parent in here:
        cycle = " → ".join(display_path(p) for p in [*here[here.index(parent) :], parent])
        raise _Problems([Problem(ext_loc, f"`extends` cycle: {cycle}")])
    if len(here) >= MAX_EXTENDS_DEPTH:
        raise _Problems(
            [Problem(ext_loc, f"`extends` chain longer than {MAX_EXTENDS_DEPTH} files")]
        )
    if not parent.is_file():
        if parent.is_dir():
            what = "is a directory"
        elif os.path.lexists(parent):
            what = "is not a regular file (a symlink loop, a dangling link or a device?)"
        else:
            what = "does not exist"
        raise _Problems(
            [
                Problem(
                    ext_loc,
                    f"parent policy {one_line(repr(ext))} {what} "
                    f"(looked for {display_path(parent)})",
                )
            ]
        )
    base = _load_raw(parent, [*chain, path], soft)
    base.data.pop("extends", None)
    merged_spans = {
        p: s for p, s in base.spans.items() if p != ("extends",) and not _shadowed(data, p)
    }
    merged_spans.update(spans)
    return _Raw(_deep_merge(base.data, data), merged_spans, [path, *base.files])


# --- pydantic errors → plain words -----------------------------------------------------------


def _kind(value: Any) -> str:
    """What kind of value this is, without its contents."""
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool | int | float):
        return "a number" if not isinstance(value, bool) else "true or false"
    return _describe(value)


def _describe(value: Any) -> str:
    """A value as quoted in a message: short, one line (the offending token, never a file)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return short(value)
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, datetime.date):
        return f"a date ({value.isoformat()})"
    if isinstance(value, bytes):
        return "binary data"
    return type(value).__name__


def _unwrap(tp: Any) -> Any:
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model describing the mapping at `loc`, if any."""
    tp: Any = Policy
    for part in loc:
        tp = _unwrap(tp)
        origin = typing.get_origin(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel) and isinstance(part, str):
            f = tp.model_fields.get(part)
            if f is None:
                return None
            tp = f.annotation
        elif origin is list and isinstance(part, int):
            tp = typing.get_args(tp)[0]
        elif origin is dict:
            tp = typing.get_args(tp)[1]
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _choices(expected: str) -> str:
    """pydantic's `'a', 'b' or 'c'` as `a, b, c`."""
    return expected.replace(" or ", ", ").replace("'", "")


_TYPE_WORDS = {
    "string_type": "a string",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
}


def _message(err: Any) -> tuple[str, bool]:
    """Plain words for one pydantic error, and whether it points at the key (not the value)."""
    kind, loc, value = err["type"], tuple(err["loc"]), err.get("input")
    ctx = err.get("ctx") or {}
    if kind in ERROR_RULES:  # tierlock's own messages (units, limits): already plain words
        return str(err["msg"]), False
    if kind == "missing":
        return "required key is missing", True
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        allowed = list(model.model_fields) if model else []
        msg = "unknown key"
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        if close:
            msg += f" (did you mean {close[0]!r}?)"
        if allowed:
            msg += f"; allowed here: {', '.join(allowed)}"
        return msg, True
    if kind == "literal_error":
        return f"{_describe(value)} is not one of {_choices(str(ctx.get('expected', '')))}", False
    if kind in _TYPE_WORDS:
        return f"expected {_TYPE_WORDS[kind]}, got {_describe(value)}", False
    if kind in ("model_type", "model_attributes_type"):
        model = _model_at(loc)
        keys = f" (keys: {', '.join(model.model_fields)})" if model else ""
        return f"expected a mapping{keys}, got {_describe(value)}", False
    if kind == "value_error":
        return str(err["msg"]).removeprefix("Value error, "), False
    if kind == "string_too_short":
        n = ctx.get("min_length", 1)
        return ("must not be empty" if n == 1 else f"must be at least {n} characters long"), False
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        words = {
            "greater_than": "greater than",
            "greater_than_equal": "at least",
            "less_than": "less than",
            "less_than_equal": "at most",
        }[kind]
        bound = next(iter(ctx.values()), "?")
        return f"must be {words} {bound}, got {_describe(value)}", False
    if kind == "finite_number":
        return f"must be a finite number, got {_describe(value)}", False
    msg = str(err["msg"])
    return f"{msg[:1].lower()}{msg[1:]}, got {_describe(value)}", False


def _validation_problems(e: ValidationError, positions: PositionIndex) -> list[Problem]:
    out = []
    for err in e.errors():
        loc: KeyPath = tuple(p for p in err["loc"] if isinstance(p, str | int))
        msg, at_key = _message(err)
        rule = ERROR_RULES.get(err["type"], "")
        out.append(Problem(positions.locate(loc, at_key=at_key), one_line(msg), rule=rule))
    return out


# --- public API -------------------------------------------------------------------------------


def _sort(problems: list[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (p.location.file, p.location.line, p.location.column))


def load_policy_file(path: str | Path, *, text: str | None = None) -> LoadedPolicy:
    """Load a policy file (or `text` as if it were at `path`), resolving `extends`.

    Raises `PolicyError` whose `problems` name file:line:col and key path for every mistake.
    """
    p = Path(path)
    file = display_path(p)
    soft: list[Problem] = []
    try:
        raw = _load_raw(p, [], soft, text)
    except _Problems as e:
        raise PolicyError(f"{file}: invalid policy", _sort(soft + e.problems)) from None
    except RecursionError:
        raise PolicyError(
            f"{file}: invalid policy", [Problem(Location(file), "nested too deeply")]
        ) from None
    positions = PositionIndex(file, raw.spans)
    try:
        policy = Policy.model_validate(raw.data, context=FILE_CONTEXT)
    except ValidationError as e:
        raise PolicyError(
            f"{file}: invalid policy", _sort(soft + _validation_problems(e, positions))
        ) from None
    if soft:
        raise PolicyError(f"{file}: invalid policy", _sort(soft))
    return LoadedPolicy(policy, positions, raw.files)


def load_policy(path: str | Path) -> Policy:
    """The effective policy of a file after `extends`; raises `PolicyError` on any problem."""
    return load_policy_file(path).policy
