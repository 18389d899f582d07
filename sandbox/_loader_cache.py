"""The policy load cache: a file loaded again in one process is parsed again only if it changed.

A run loads the same few policy files many times (every task checks its tier's policy, the
host check, the approval file, pinning, the provider). An entry is served only while every file
of its `extends` chain still reads exactly the text that was parsed (compared whole, not by
modification time, which a fast edit or a copy with `cp -p` can leave unchanged) and each
`extends` still resolves to the same parent (a symlink re-pointed counts as a change). The key
includes the working directory, because display paths and relative paths depend on it. A failed
load is never cached: the next call reports the problem again.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from ._errors import display_path
from ._loader_extends import read_policy_text
from ._loader_positions import resolved
from ._loader_yaml import LoadProblems

MAX_ENTRIES = 256
"""Policy files remembered per process (least recently used dropped first)."""


@dataclass(frozen=True)
class ChainSnapshot:
    """What a load read: each file of the chain, its text, and the `extends` it wrote."""

    files: tuple[Path, ...]
    texts: tuple[str, ...]
    extends: tuple[str | None, ...]

    def still_current(self) -> bool:
        """Whether every file still reads the same text and every `extends` the same parent.

        Any read problem counts as a change (the caller then loads again and reports it).
        """
        links = zip(self.files, self.texts, self.extends, strict=True)
        for i, (file, text, ext) in enumerate(links):
            try:
                if read_policy_text(file, display_path(file)) != text:
                    return False
            except LoadProblems:
                return False
            last = i + 1 >= len(self.files)
            if ext is not None and (last or resolved(file.parent / ext) != self.files[i + 1]):
                return False
        return True


class LoadCache:
    """A bounded, thread-safe map from (working directory, path) to a snapshot and a value."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._entries: OrderedDict[tuple[str, str], tuple[ChainSnapshot, object]] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_entries

    @staticmethod
    def key(path: Path) -> tuple[str, str]:
        try:
            cwd = os.getcwd()
        except OSError:  # the working directory was removed: relative paths mean nothing stable
            cwd = ""
        return cwd, str(path)

    def get(self, path: Path) -> tuple[ChainSnapshot, object] | None:
        """The entry for `path` if its files are unchanged (a changed one is dropped)."""
        key = self.key(path)
        with self._lock:
            entry = self._entries.get(key)
        if entry is None or not key[0]:
            return None
        if not entry[0].still_current():
            with self._lock:
                if self._entries.get(key) is entry:
                    del self._entries[key]
            return None
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
        return entry

    def put(self, path: Path, snapshot: ChainSnapshot, value: object) -> None:
        key = self.key(path)
        if not key[0]:
            return
        with self._lock:
            self._entries[key] = (snapshot, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
