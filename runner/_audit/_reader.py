"""Stream an Inspect log sample by sample, as raw JSON, with its SHA-256.

`.eval` logs are ZIP archives (zstd members): the header is read first, then each
`samples/<id>_epoch_<n>.json` member one at a time, so memory holds one sample, never the log.
The archive is checked and its members decompressed with caps (`_safezip`: no zip bomb), and
the file is opened only when it is a regular file (`_userfile`: a FIFO or `/dev/zero` cannot
block or flood the reader). `.json` logs are streamed with ijson. Anything that is not a
readable Inspect log raises `LogReadError` with one line saying why.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from tierlock.sandbox._userfile import UserFileError, open_regular

from ._jsonstream import JsonRefused, array_items, top_values
from ._safezip import SafeZip, ZipRefused

CHUNK = 1 << 20


class LogReadError(Exception):
    """A log file that cannot be read (missing, truncated, corrupt, not an Inspect log)."""


def sha256_file(path: str | Path) -> str:
    """The file's SHA-256 (hex), read in chunks (regular files only: `UserFileError` else)."""
    with open_regular(path, "log") as f:
        return _sha256(f)


def _sha256(f: BinaryIO) -> str:
    h = hashlib.sha256()
    while chunk := f.read(CHUNK):
        h.update(chunk)
    f.seek(0)
    return h.hexdigest()


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= 300 else text[:300] + "…"


class LogReader:
    """One log file: `header` (the eval's JSON header) and `samples()` (raw sample dicts)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._file = open_regular(self.path, "log")
        except UserFileError as e:
            raise LogReadError(str(e).partition(": cannot read log: ")[2] or str(e)) from None
        self._zip: SafeZip | None = None
        try:
            self.sha256 = _sha256(self._file)
            if self._file.seek(0, 2) == 0:
                raise LogReadError("empty file, not an Inspect log")
            self._file.seek(0)
            self.header: dict[str, Any] = (
                self._json_header() if self.path.suffix == ".json" else self._eval_header()
            )
            ev = self.header.get("eval")
            if not isinstance(ev, dict) or "task" not in ev:
                raise LogReadError("not an Inspect log (its header has no eval/task)")
        except BaseException:
            self.close()
            raise

    # --- .eval (zip) ---------------------------------------------------------------------------

    def _eval_header(self) -> dict[str, Any]:
        try:
            self._zip = SafeZip(self._file)
        except ZipRefused as e:
            raise LogReadError(f"refused .eval archive: {e}") from None
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as e:
            msg = f"not a readable .eval log (truncated or corrupt: {_one_line(e)})"
            raise LogReadError(msg) from None
        names = set(self._zip.namelist())
        for member in ("header.json", "_journal/start.json"):
            if member in names:
                return self._member(member)
        raise LogReadError("not an Inspect log (no header.json or _journal/start.json)")

    def _member(self, name: str) -> dict[str, Any]:
        assert self._zip is not None
        try:
            data = json.loads(self._zip.read(name))
        except ZipRefused as e:
            raise LogReadError(f"refused .eval archive: {e}") from None
        except (ValueError, RecursionError, KeyError, OSError, zipfile.BadZipFile) as e:
            # JSON/UTF-8 errors are ValueErrors: all mean "corrupt"
            msg = f"{name[:200]}: corrupt member ({type(e).__name__}: {_one_line(e)})"
            raise LogReadError(msg) from None
        if not isinstance(data, dict):
            raise LogReadError(f"{name}: not a JSON object")
        return data

    def sample_members(self) -> list[str]:
        """Names of the sample members, each once (a re-logged sample's last copy wins)."""
        if self._zip is None:
            return []
        return [
            n
            for n in dict.fromkeys(self._zip.namelist())
            if n.startswith("samples/") and n.endswith(".json")
        ]

    def samples(self) -> Iterator[tuple[str, dict[str, Any] | LogReadError]]:
        """(member name, raw sample dict) one at a time; a corrupt member gives a `LogReadError`
        in place of its sample and the next ones are still read (a corrupt `.json` log ends)."""
        if self.path.suffix == ".json":
            for i, sample in enumerate(self._json_samples()):
                yield f"samples[{i}]", sample
            return
        for name in self.sample_members():
            try:
                yield name, self._member(name)
            except LogReadError as e:
                yield name, e

    # --- .json -----------------------------------------------------------------------------------

    def _json_header(self) -> dict[str, Any]:
        try:
            out = top_values(self._file, {"version", "status", "eval"}, stop_at="samples")
        except JsonRefused as e:
            raise LogReadError(f"not a readable JSON log ({e})") from None
        self._file.seek(0)
        return out

    def _json_samples(self) -> Iterator[dict[str, Any]]:
        self._file.seek(0)
        try:
            yield from array_items(self._file, "samples")
        except JsonRefused as e:
            raise LogReadError(f"corrupt JSON log ({e})") from None

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
        if getattr(self, "_file", None) is not None:
            self._file.close()

    def __enter__(self) -> LogReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
