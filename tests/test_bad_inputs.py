"""The bad-input corpus: every `tests/data/bad/**/*.yaml` case runs the installed `tierlock`.

Each case file is one hostile or malformed input and what tierlock must do with it:

```yaml
about: one line saying what is wrong with the input
argv: [audit, "{tmp}/pipe.eval"]   # tierlock's arguments after placeholder expansion
setup:                             # optional: things to create in {tmp} before running
  - fifo: pipe.eval
exit: 1                            # expected exit code
stderr: "pipe\\.eval: .*not a regular file"   # regex, re.search on stderr
env: {TIERLOCK_X: "1"}             # optional: extra environment variables
```

Placeholders, expanded in `argv`, `env` values and setup strings: `{here}` the case file's
folder, `{tmp}` a fresh temporary directory (also the working directory), plus any name a
`long_name` step defines. Input files beside a case must not end in `.yaml` (policies:
`*.policy.yaml`, campaigns: `*.campaign.yaml`).

Setup steps (each a one-key mapping; names are relative to `{tmp}` unless absolute):

- `fifo: NAME` — a named pipe (`os.mkfifo`); nobody ever writes to it.
- `symlink_loop: NAME` — `NAME` → `NAME.loop` → `NAME` (opening either fails with ELOOP).
- `symlink: {name: NAME, to: TARGET}` — a plain symbolic link.
- `chardev: NAME` or `chardev: {name: NAME, to: /dev/null}` — a symlink to a character
  device (default `/dev/zero`: endless bytes, so reading it "to the end" never ends).
- `dir: NAME` — an (empty) directory.
- `file: {name: NAME, content: TEXT, before: B, repeat: R, bytes: N, mode: 0o000}` — a file
  holding B then TEXT (placeholders expanded) R times (default 1); with `bytes`, that (default a
  NUL byte) repeated and cut to N bytes.
- `copy: {from: PATH, to: NAME}` — copy a file (e.g. from `{here}`) into `{tmp}`.
- `zipbomb: {name: NAME, member: header.json, size: N, method: zstd, declare: D, members: K,
  header: true}` — a ZIP written by hand: `header: true` puts a valid-looking `header.json` first;
  `members: K` adds K empty sample members; `size: N` adds MEMBER holding N zero bytes compressed
  with `method` (`zstd`, the default: 1 MiB per ~20-byte frame; `deflate`: ~1000:1; `stored`),
  declaring D bytes uncompressed (default N: `declare` lets the archive lie). CRCs of bomb
  members are 0 (nothing should get as far as checking them).
- `long_name: {as: VAR, bytes: N, parts: P}` — defines placeholder `{VAR}`: P path components of
  N bytes each (`a…a/a…a`), e.g. 300 bytes (> NAME_MAX) or 20 × 250 (> PATH_MAX).
- `sqlite: {name: NAME, sql: "create table t(x)"}` — an SQLite database that is not a ledger.

The test asserts the exit code, `re.search(stderr_regex, stderr)`, no `Traceback` in stdout or
stderr, no hang (60 s per case; a timeout fails as "hang") and a peak RSS (`ru_maxrss` from
`os.wait4` in a small waiter process, kB on Linux) below 300 MB. `TIERLOCK_RUNS={tmp}/runs` and stdin is /dev/null.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

BAD = Path(__file__).parent / "data" / "bad"
TIMEOUT_S = 60.0
MAX_RSS_KB = 300 * 1024
CASE_KEYS = {"about", "argv", "setup", "exit", "stderr", "env", "absent_runtime"}


def _tierlock() -> str:
    """The installed console script (the one beside this interpreter first)."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    exe = shutil.which("tierlock", path=path)
    if exe is None:
        pytest.fail("the tierlock console script is not installed (pip install -e .)")
    return exe


def _cases() -> list[Any]:
    return [
        pytest.param(p, id=str(p.relative_to(BAD).with_suffix("")))
        for p in sorted(BAD.glob("**/*.yaml"))
        if not p.name.endswith((".policy.yaml", ".campaign.yaml"))
    ]


@dataclass
class Case:
    path: Path
    about: str
    argv: list[str]
    exit: int
    stderr: str
    setup: list[dict[str, Any]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    absent_runtime: str | None = None
    """A runtime the case needs the daemon NOT to have (runsc: tests/gvisor_setup.sh adds it)."""

    @classmethod
    def load(cls, path: Path) -> Case:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            pytest.fail(f"{path}: a case file must be valid YAML ({e})")
        if not isinstance(data, dict):
            pytest.fail(f"{path}: a case file is a mapping")
        unknown = set(data) - CASE_KEYS
        missing = {"about", "argv", "exit", "stderr"} - set(data)
        if unknown or missing:
            pytest.fail(f"{path}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}")
        if not isinstance(data["argv"], list) or not all(
            isinstance(a, str | int | float) for a in data["argv"]
        ):
            pytest.fail(f"{path}: argv is a list of strings")
        return cls(
            path=path,
            about=str(data["about"]),
            argv=[str(a) for a in data["argv"]],
            exit=int(data["exit"]),
            stderr=str(data["stderr"]),
            setup=list(data.get("setup") or []),
            env={str(k): str(v) for k, v in (data.get("env") or {}).items()},
            absent_runtime=data.get("absent_runtime"),
        )


class _Vars(dict[str, str]):
    def __missing__(self, key: str) -> str:
        raise KeyError(f"unknown placeholder {{{key}}}")


def _expand(text: str, names: _Vars) -> str:
    # only {word} placeholders; other braces (regexes, JSON) stay as they are
    return re.sub(r"\{(\w+)\}", lambda m: names[m.group(1)], text)


def _zeros(method: str, size: int) -> bytes:
    """`size` zero bytes compressed (raw deflate or zstd frames), built without holding them."""
    mib = 1 << 20
    whole, rest = divmod(size, mib)
    if method == "zstd":
        import zstandard

        cctx = zstandard.ZstdCompressor(level=19)
        frame = cctx.compress(bytes(mib))  # concatenated frames are one valid zstd stream
        return frame * whole + (cctx.compress(bytes(rest)) if rest else b"")
    if method == "deflate":  # after the first block, every MiB of zeros encodes the same
        d = zlib.compressobj(9, zlib.DEFLATED, -15)
        first = d.compress(bytes(mib)) + d.flush(zlib.Z_SYNC_FLUSH) if whole else b""
        again = d.compress(bytes(mib)) + d.flush(zlib.Z_SYNC_FLUSH) if whole > 1 else b""
        tail = d.compress(bytes(rest)) + d.flush()
        return first + again * max(whole - 1, 0) + tail
    return bytes(size)  # stored


_METHODS = {"stored": 0, "deflate": 8, "zstd": 93}


def _write_zip(path: Path, members: list[tuple[str, str, bytes, int, int]]) -> None:
    """A ZIP of (name, method, compressed data, declared size, CRC) members, sizes < 4 GiB."""
    local, central = bytearray(), bytearray()
    for name, method, data, declared, crc in members:
        raw = name.encode()
        fields = (20, 0, _METHODS[method], 0, 0x21, crc, len(data), declared, len(raw), 0)
        central += struct.pack("<4sH", b"PK\x01\x02", 20)
        central += struct.pack("<HHHHHIIIHH", *fields)
        central += struct.pack("<HHHII", 0, 0, 0, 0, len(local)) + raw
        local += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", *fields) + raw + data
    count = len(members)
    eocd = struct.pack(
        "<4sHHHHIIH",
        b"PK\x05\x06",
        0,
        0,
        count & 0xFFFF,
        count & 0xFFFF,
        len(central),
        len(local),
        0,
    )
    path.write_bytes(bytes(local + central + eocd))


HEADER = b'{"version": 2, "status": "success", "eval": {"task": "bomb", "model": "none"}}'


def _zipbomb(path: Path, spec: dict[str, Any]) -> None:
    members: list[tuple[str, str, bytes, int, int]] = []
    if spec.get("header"):
        members.append(("header.json", "stored", HEADER, len(HEADER), zlib.crc32(HEADER)))
    for i in range(int(spec.get("members", 0))):
        members.append((f"samples/{i}_epoch_1.json", "stored", b"", 0, 0))
    if "size" in spec:
        size, method = int(spec["size"]), str(spec.get("method", "zstd"))
        declared = int(spec.get("declare", size))
        member = str(spec.get("member", "header.json"))
        members.append((member, method, _zeros(method, size), declared, 0))
    _write_zip(path, members)


def _setup(steps: list[dict[str, Any]], tmp: Path, names: _Vars) -> None:
    def at(name: Any) -> Path:
        p = Path(_expand(str(name), names))
        return p if p.is_absolute() else tmp / p

    for step in steps:
        if not isinstance(step, dict) or len(step) != 1:
            pytest.fail(f"a setup step is a one-key mapping, got {step!r}")
        ((kind, arg),) = step.items()
        spec: dict[str, Any] = arg if isinstance(arg, dict) else {"name": arg}
        if kind == "long_name":
            part = "a" * int(spec.get("bytes", 300))
            names[str(spec["as"])] = "/".join([part] * int(spec.get("parts", 1)))
            continue
        if kind == "copy":
            dest = at(spec["to"])
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(_expand(str(spec["from"]), names), dest)
            continue
        target = at(spec["name"])
        target.parent.mkdir(parents=True, exist_ok=True)
        if kind == "fifo":
            os.mkfifo(target)
        elif kind == "symlink_loop":
            os.symlink(target.name + ".loop", target)
            os.symlink(target.name, target.with_name(target.name + ".loop"))
        elif kind == "symlink":
            os.symlink(_expand(str(spec["to"]), names), target)
        elif kind == "chardev":
            os.symlink(str(spec.get("to", "/dev/zero")), target)
        elif kind == "dir":
            target.mkdir(parents=True, exist_ok=True)
        elif kind == "file":
            content = _expand(str(spec.get("content", "\0" if "bytes" in spec else "")), names)
            content = str(spec.get("before", "")) + content * int(spec.get("repeat", 1))
            raw = content.encode("utf-8", "surrogateescape")
            if "bytes" in spec:
                n = int(spec["bytes"])
                raw = (raw * (n // max(len(raw), 1) + 1))[:n]
            target.write_bytes(raw)
            if "mode" in spec:
                target.chmod(int(spec["mode"]))
        elif kind == "zipbomb":
            _zipbomb(target, spec)
        elif kind == "sqlite":
            with sqlite3.connect(target) as db:
                db.executescript(str(spec.get("sql", "create table t(x);")))
            db.close()
        else:
            pytest.fail(f"unknown setup step {kind!r}")


@dataclass
class Outcome:
    code: int | None  # None: killed after the timeout
    stdout: str
    stderr: str
    seconds: float
    max_rss_kb: int


_WAITER = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
proc.returncode = 0
with open(sys.argv[1], "w") as f:
    f.write(f"{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss}")
"""
"""Runs tierlock and reports its exit code and peak RSS. A child's `ru_maxrss` starts from the
memory of the process that forked it (Linux keeps the high-water mark across fork and exec), so
measured straight from a pytest worker it would read the worker's hundreds of MB: this small
process forks tierlock instead."""


def run_tierlock(argv: list[str], cwd: Path, env: dict[str, str]) -> Outcome:
    """Run the console script through `_WAITER`; kill its process group after `TIMEOUT_S`."""
    out_path, err_path = cwd.parent / "stdout", cwd.parent / "stderr"
    result = cwd.parent / "waited"
    start = time.monotonic()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", _WAITER, str(result), _tierlock(), *argv],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    timed_out = False
    try:
        proc.wait(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        timed_out = True
    elapsed = time.monotonic() - start
    with contextlib.suppress(ProcessLookupError):  # nothing of the case may outlive it
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    code: int | None = None
    max_rss_kb = 0
    if not timed_out and result.is_file():
        code_text, rss_text = result.read_text().split()
        code, max_rss_kb = int(code_text), int(rss_text)
    return Outcome(
        code=code,
        stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"),
        seconds=elapsed,
        max_rss_kb=max_rss_kb,
    )


MEASURED: dict[str, Outcome] = {}


def _measure_file() -> Path:
    """$TMPDIR/tierlock-bad-inputs-<run>.tsv: one line per case (name, seconds, peak kB, exit)."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID", str(os.getpid()))
    return Path(tempfile.gettempdir()) / f"tierlock-bad-inputs-{run}.tsv"


def _daemon_has_runtime(name: str) -> bool:
    info = subprocess.run(
        ["docker", "info", "--format", "{{json .Runtimes}}"], capture_output=True, text=True
    )
    return info.returncode == 0 and f'"{name}"' in info.stdout


@pytest.mark.parametrize("case_file", _cases())
def test_bad_input(case_file: Path, tmp_path: Path) -> None:
    case = Case.load(case_file)
    if case.absent_runtime and _daemon_has_runtime(case.absent_runtime):
        pytest.skip(f"the Docker daemon has runtime {case.absent_runtime!r}")
    work = tmp_path / "work"
    work.mkdir()
    names = _Vars(here=str(case_file.parent), tmp=str(work))
    _setup(case.setup, work, names)
    argv = [_expand(a, names) for a in case.argv]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIERLOCK_")}
    env.update(TIERLOCK_RUNS=str(work / "runs"), COLUMNS="200", NO_COLOR="1")
    env.update({k: _expand(v, names) for k, v in case.env.items()})
    res = run_tierlock(argv, work, env)
    name = str(case_file.relative_to(BAD).with_suffix(""))
    MEASURED[name] = res
    with open(_measure_file(), "a") as f:  # one file for all xdist workers of this run
        f.write(f"{name}\t{res.seconds:.2f}\t{res.max_rss_kb}\t{res.code}\n")
    said = f"{case.about}\n--- stdout:\n{res.stdout[-3000:]}\n--- stderr:\n{res.stderr[-3000:]}"
    assert res.code is not None, f"hang: no exit within {TIMEOUT_S:.0f} s\n{said}"
    assert "Traceback" not in res.stdout + res.stderr, f"a traceback\n{said}"
    assert "internal error" not in res.stderr, f"a bug, not a user error\n{said}"
    assert res.max_rss_kb < MAX_RSS_KB, f"peak RSS {res.max_rss_kb // 1024} MB\n{said}"
    assert res.code == case.exit, f"exit {res.code}, expected {case.exit}\n{said}"
    assert re.search(case.stderr, res.stderr), f"stderr does not match {case.stderr!r}\n{said}"


def test_an_unexpected_exception_is_one_line_and_a_crash_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A bug is not dressed up as a user error, nor shown as a traceback: one line says it is a
    bug and where the traceback was written."""
    from tierlock.runner import cli as cli_module

    def boom(**_: Any) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cli_module.cli, "main", boom)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    with pytest.raises(SystemExit) as exit_info:
        cli_module.main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    m = re.search(
        r"internal error \(a bug in tierlock.*ZeroDivisionError: a bug; traceback written to (\S+)$",
        err,
    )
    assert m, err
    crash = Path(m.group(1))
    assert crash.parent == tmp_path and "Traceback" in crash.read_text()


def test_corpus_is_well_formed() -> None:
    """Every case file parses and uses only known keys; every group has cases."""
    cases = _cases()
    assert cases, f"no case files under {BAD}"
    for param in cases:
        (path,) = param.values
        case = Case.load(path)
        re.compile(case.stderr)
        assert case.about.strip(), f"{path}: about is empty"


@pytest.fixture(scope="module", autouse=True)
def _report_measurements(request: pytest.FixtureRequest) -> Any:
    """After the corpus: the slowest case and the highest peak RSS, printed uncaptured."""
    yield
    if not MEASURED:
        return
    slow = max(MEASURED.items(), key=lambda kv: kv[1].seconds)
    big = max(MEASURED.items(), key=lambda kv: kv[1].max_rss_kb)
    line = (
        f"bad inputs: {len(MEASURED)} cases run; slowest {slow[0]} {slow[1].seconds:.1f} s; "
        f"highest peak RSS {big[0]} {big[1].max_rss_kb / 1024:.0f} MB"
    )
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\n{line}")
