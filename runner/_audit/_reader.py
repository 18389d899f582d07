"""Stream an Inspect log sample by sample, as raw JSON, with its SHA-256.

`.eval` logs are ZIP archives (zstd members): the header is read first, then each
`samples/<id>_epoch_<n>.json` member one at a time, so memory holds one sample, never the log.
`.json` logs are streamed with ijson. Anything that is not a readable Inspect log raises
`LogReadError` with one line saying why.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import inspect_ai._util.zipfile  # noqa: F401  (installs zstd support into zipfile)

CHUNK = 1 << 20


class LogReadError(Exception):
    """A log file that cannot be read (missing, truncated, corrupt, not an Inspect log)."""


def sha256_file(path: str | Path) -> str:
    """The file's SHA-256 (hex), read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


class LogReader:
    """One log file: `header` (the eval's JSON header) and `samples()` (raw sample dicts)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise LogReadError("file not found")
        if self.path.is_dir():
            raise LogReadError("is a directory, not a log file")
        self.sha256 = sha256_file(self.path)
        self._zip: zipfile.ZipFile | None = None
        self.header: dict[str, Any] = (
            self._json_header() if self.path.suffix == ".json" else self._eval_header()
        )
        ev = self.header.get("eval")
        if not isinstance(ev, dict) or "task" not in ev:
            raise LogReadError("not an Inspect log (its header has no eval/task)")

    # --- .eval (zip) ---------------------------------------------------------------------------

    def _eval_header(self) -> dict[str, Any]:
        try:
            self._zip = zipfile.ZipFile(self.path)
        except zipfile.BadZipFile as e:
            raise LogReadError(f"not a readable .eval log (truncated or corrupt: {e})") from e
        names = set(self._zip.namelist())
        for member in ("header.json", "_journal/start.json"):
            if member in names:
                return self._member(member)
        raise LogReadError("not an Inspect log (no header.json or _journal/start.json)")

    def _member(self, name: str) -> dict[str, Any]:
        assert self._zip is not None
        try:
            with self._zip.open(name) as f:
                data = json.load(f)
        except Exception as e:  # zlib/zstd/CRC/JSON errors all mean "corrupt"
            raise LogReadError(f"{name}: corrupt member ({type(e).__name__}: {e})") from e
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
        import ijson

        out: dict[str, Any] = {}
        try:
            with open(self.path, "rb") as f:
                for key, value in ijson.kvitems(f, "", use_float=True):
                    if key in ("version", "status", "eval"):
                        out[key] = value
                    if len(out) == 3 or key == "samples":
                        break
        except Exception as e:
            raise LogReadError(f"not a readable JSON log ({type(e).__name__}: {e})") from e
        return out

    def _json_samples(self) -> Iterator[dict[str, Any]]:
        import ijson

        try:
            with open(self.path, "rb") as f:
                yield from ijson.items(f, "samples.item", use_float=True)
        except ijson.JSONError as e:
            raise LogReadError(f"corrupt JSON log ({e})") from e

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()

    def __enter__(self) -> LogReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
