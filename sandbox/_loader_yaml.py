"""YAML to plain data with positions: one document read with PyYAML's safe loader, bounded (nodes,
depth, no recursive aliases, no tags beyond the standard ones), merge keys applied, duplicate keys
reported, and a `Span` recorded for every key path. Problems are raised as `LoadProblems`."""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ._errors import Location, Problem
from ._loader_positions import KeyPath, Span, format_key_path, one_line

_MAX_NODES = 100_000
_MAX_DEPTH = 64
_MERGE_TAG = "tag:yaml.org,2002:merge"
_SEXAGESIMAL_TAGS = {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}
_STD_COLLECTION_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}


class LoadProblems(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(problems[0].message if problems else "")
        self.problems = problems


def mark_location(file: str, mark: Any, key: str = "") -> Location:
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
        loc = mark_location(self.file, node.start_mark, format_key_path(path))
        self.problems.append(Problem(loc, one_line(message)))

    def record(self, path: KeyPath, value: Node, key: Node | None) -> None:
        v, k = value.start_mark, (key or value).start_mark
        self.spans[path] = Span(self.file, v.line + 1, v.column + 1, k.line + 1, k.column + 1)

    def convert(self, node: Node, path: KeyPath = ()) -> Any:
        self._nodes += 1
        if self._nodes > _MAX_NODES:
            raise LoadProblems(
                [
                    Problem(
                        mark_location(self.file, node.start_mark),
                        f"document too large (over {_MAX_NODES} YAML nodes, "
                        "e.g. through nested aliases)",
                    )
                ]
            )
        if len(path) > _MAX_DEPTH:
            raise LoadProblems(
                [
                    Problem(
                        mark_location(self.file, node.start_mark),
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
                loc = mark_location(self.file, key_node.start_mark, format_key_path((*path, key)))
                self.soft_problems.append(
                    Problem(loc, f"duplicate key (first set at line {first.line + 1})")
                )
                continue
            first_seen[key] = key_node
            self.record((*path, key), value_node, key_node)
            own[key] = self.convert(value_node, (*path, key))
        return {**merged, **own}


def line_col(text: str, offset: int) -> tuple[int, int]:
    before = text[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


def parse_yaml(
    text: str, file: str, soft: list[Problem]
) -> tuple[Any, dict[KeyPath, Span], Node | None]:
    """Plain data, spans, and the root node of one YAML document; raises `LoadProblems`.

    Problems that do not stop validation (duplicate keys) are appended to `soft`.
    """
    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as e:
        what = ", ".join(str(w) for w in (e.context, e.problem) if w) or "malformed YAML"
        mark = e.problem_mark or e.context_mark
        raise LoadProblems(
            [Problem(mark_location(file, mark), one_line(f"invalid YAML: {what}"))]
        ) from None
    except yaml.reader.ReaderError as e:
        line, col = line_col(text, e.position)
        char = f"#x{e.character:04x}" if isinstance(e.character, int) else repr(e.character)
        raise LoadProblems(
            [Problem(Location(file, line, col), f"invalid YAML: character {char} is not allowed")]
        ) from None
    except yaml.YAMLError as e:  # not marked: its text may quote the source, so name it only
        raise LoadProblems([Problem(Location(file), f"invalid YAML ({type(e).__name__})")]) from None
    except RecursionError:
        raise LoadProblems([Problem(Location(file), "invalid YAML: nested too deeply")]) from None
    finally:
        if loader is not None:
            loader.dispose()
    if root is None:
        raise LoadProblems(
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
        raise LoadProblems(conv.problems + conv.soft_problems)
    soft.extend(conv.soft_problems)
    return data, conv.spans, root
