"""Load policy files: YAML with positions, `extends`, and errors that name file:line:col and key.

`load_policy(path)` returns the effective `Policy`. `load_policy_file(path)` also returns where each
key was written (`LoadedPolicy.positions`), so lint can point at the offending line, including lines
in a parent file reached through `extends`. Every problem raises `PolicyError` with one `Problem` per
mistake; nothing else escapes (no traceback for a bad file).

The pieces: `_loader_yaml` (YAML with positions), `_loader_extends` (reading files, the `extends`
chain), `_loader_messages` (pydantic errors in plain words), `_loader_positions` (key paths and
where they were written), `_loader_cache` (a file loaded again is parsed again only if it
changed). This module puts them together and owns `LoadedPolicy`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from ._errors import Location, PolicyError, Problem, display_path
from ._loader_cache import ChainSnapshot, LoadCache
from ._loader_extends import load_raw
from ._loader_messages import validation_problems
from ._loader_positions import KeyPath, PositionIndex, resolved
from ._loader_yaml import LoadProblems
from ._policy import Policy
from ._units import FILE_CONTEXT


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


_cache = LoadCache()


def _sort(problems: list[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (p.location.file, p.location.line, p.location.column))


def load_policy_file(path: str | Path, *, text: str | None = None) -> LoadedPolicy:
    """Load a policy file (or `text` as if it were at `path`), resolving `extends`.

    Raises `PolicyError` whose `problems` name file:line:col and key path for every mistake.
    A file read again in this process is parsed again only if a file of its chain changed
    (`_loader_cache`); each call returns its own `LoadedPolicy` (the `Policy` is immutable).
    """
    p = Path(path)
    if text is None:
        hit = _cache.get(p)
        if hit is not None and isinstance(hit[1], LoadedPolicy):
            return _copy(hit[1])
    file = display_path(p)
    soft: list[Problem] = []
    try:
        raw = load_raw(p, [], soft, text)
    except LoadProblems as e:
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
            f"{file}: invalid policy", _sort(soft + validation_problems(e, positions))
        ) from None
    if soft:
        raise PolicyError(f"{file}: invalid policy", _sort(soft))
    loaded = LoadedPolicy(policy, positions, raw.files)
    if text is None:
        snapshot = ChainSnapshot(tuple(raw.files), tuple(raw.texts), tuple(raw.extends))
        _cache.put(p, snapshot, _copy(loaded))
    return loaded


def _copy(loaded: LoadedPolicy) -> LoadedPolicy:
    """A caller's own `LoadedPolicy`: the same immutable `Policy`, its own lists and spans."""
    positions = PositionIndex(loaded.positions.file, dict(loaded.positions.spans))
    return LoadedPolicy(loaded.policy, positions, list(loaded.files))


def load_policy(path: str | Path) -> Policy:
    """The effective policy of a file after `extends`; raises `PolicyError` on any problem."""
    return load_policy_file(path).policy
