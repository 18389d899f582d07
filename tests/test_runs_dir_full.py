"""A runs directory that fills up or turns read-only mid-run: no verdict, exit 3, one line.

The runs directory is a file system the test makes (root only): a small tmpfs to fill, or an
ext4 image mounted with `errors=remount-ro` whose error the test triggers (`trigger_fs_error`),
which turns it read-only under the writers that have it open, as a failing disk does
(`mount -o remount,ro` refuses while the ledger is open for writing). The ledger's own appends
are checked at the very moment of the fault (the disk fills inside the transaction), then whole
`tierlock run`s of the tool-restricted tier with the offline scripted model: exit 3 with one
line, no verdict, nothing left in Docker, and once there is room again the same command
resumes the run and finishes it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tierlock.runner._ledger import Ledger
from tierlock.runner._runs_dir import RunsDirUnwritable
from tierlock.sandbox._labels import OWNER_LABEL

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounts a file system (root only)")


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, text=True)


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    _run("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where))
    try:
        yield where
    finally:
        _unmount(where)


@contextlib.contextmanager
def ext4(where: Path, size: str = "64M") -> Iterator[Path]:
    """An ext4 image mounted at `where` with errors=remount-ro."""
    image = where.with_suffix(".img")
    _run("truncate", "-s", size, str(image))
    _run("mkfs.ext4", "-q", "-F", str(image))
    where.mkdir(parents=True, exist_ok=True)
    _run("mount", "-o", "loop,errors=remount-ro", str(image), str(where))
    try:
        yield where
    finally:
        _unmount(where)
        image.unlink(missing_ok=True)


def _unmount(where: Path) -> None:
    for _ in range(50):  # a process that just exited may still hold a file for a moment
        if subprocess.run(["umount", str(where)], capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


def turn_read_only(where: Path) -> None:
    """What a disk error does on ext4 mounted errors=remount-ro: read-only under the writers."""
    device = subprocess.run(
        ["findmnt", "-n", "-o", "SOURCE", str(where)], capture_output=True, text=True, check=True
    ).stdout.strip()
    Path(f"/sys/fs/ext4/{Path(device).name}/trigger_fs_error").write_text("tierlock test\n")
    with pytest.raises(OSError) as refused:
        (where / "probe").write_text("x")
    assert refused.value.errno == errno.EROFS


def repair(where: Path) -> None:
    """Unmount, fsck and mount the image again (the disk is back)."""
    image = where.with_suffix(".img")
    _unmount(where)
    subprocess.run(["e2fsck", "-fy", str(image)], capture_output=True)
    _run("mount", "-o", "loop,errors=remount-ro", str(image), str(where))


def fill(where: Path) -> Path:
    """Fill the file system at `where` to its last byte; returns the filler file."""
    filler = where / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    block = b"\0" * (1 << 16)
    try:
        while True:
            try:
                os.write(fd, block)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                if len(block) == 1:
                    break
                block = block[: len(block) // 2]
    finally:
        os.close(fd)
    return filler


# --- the ledger at the moment of the fault -----------------------------------------------------


def append(ledger: Ledger, kind: str = "run_resumed", **payload: Any) -> Any:
    return ledger.append(kind, run_id="r", campaign="c", model="m", payload=payload)


class _FillsAtCommit:
    """The ledger's connection, filling the disk right before the transaction commits."""

    def __init__(self, db: Any, where: Path) -> None:
        self.db, self.where, self.filled = db, where, False

    def execute(self, sql: str, *args: Any) -> Any:
        if sql == "COMMIT" and not self.filled:
            self.filled = True
            fill(self.where)
        return self.db.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


def test_the_disk_fills_during_a_ledger_append(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "runs", "1m") as runs:
        ledger = Ledger(runs / "ledger.sqlite")
        for i in range(3):
            append(ledger, "run_started", n=i)
        real = ledger._db
        ledger._db = _FillsAtCommit(real, runs)  # type: ignore[assignment]
        with pytest.raises(RunsDirUnwritable) as caught:
            append(ledger, text="x" * 200_000)  # more than the WAL holds already
        ledger._db = real
        line = str(caught.value)
        assert "\n" not in line and caught.value.exit_code == 3
        assert line.startswith(f"runs directory {runs}: No space left on device; ")
        assert "nothing was recorded after record 3 (run_started)" in line
        with pytest.raises(RunsDirUnwritable):  # every later append says the same
            append(ledger, "verdict", outcome="incomplete")
        (runs / "filler").unlink()
        assert [r.seq for r in ledger.records()] == [1, 2, 3]  # nothing half-written
        assert append(ledger).seq == 4  # room again: the ledger goes on
        ledger.close()
        with Ledger(runs / "ledger.sqlite", readonly=True) as again:
            assert again.verify().ok
        print(line)


def test_the_runs_directory_turns_read_only_during_a_run(tmp_path: Path) -> None:
    with ext4(tmp_path / "runs") as runs:
        ledger = Ledger(runs / "ledger.sqlite")
        append(ledger, "run_started")
        append(ledger, "tier_started")
        turn_read_only(runs)
        with pytest.raises(RunsDirUnwritable) as caught:
            append(ledger)
        line = str(caught.value)
        assert line.startswith(f"runs directory {runs}: Read-only file system; ")
        assert "nothing was recorded after record 2 (tier_started)" in line
        ledger.close()
        repair(runs)
        with Ledger(runs / "ledger.sqlite") as after:
            assert [r.seq for r in after.records()] == [1, 2]
            assert after.verify().ok
        print(line)


# --- whole runs --------------------------------------------------------------------------------

CAMPAIGN = f"""\
name: runs-dir-faults
tiers:
  - tier: tool-restricted
    policy: {ROOT}/policies/tool-restricted.yaml
    tasks:
      - task: {ROOT}/tasks/tool_restricted/qualification.py@tool_restricted_qualification
        kind: qualification
        thresholds: ["task_completed/accuracy >= 0.9"]
    limits: {{messages: 40, tokens: 500k, time: 5m}}
"""


def records(runs: Path) -> list[Any]:
    if not (runs / "ledger.sqlite").exists():
        return []
    with contextlib.suppress(Exception), Ledger(runs / "ledger.sqlite", readonly=True) as ledger:
        return list(ledger.records())
    return []


def tierlock_run(cwd: Path, runs: Path, *, fault: Any = None) -> tuple[int, str, str, int]:
    """(exit code, stdout, stderr, pid) of `tierlock run`; `fault(runs)` is called once the
    tier has started (its `tier_started` record is in the ledger)."""
    campaign = cwd / "faults.campaign.yaml"
    campaign.write_text(CAMPAIGN)
    exe = shutil.which("tierlock") or "tierlock"
    argv = [exe, "run", str(campaign), "--model", "tierlock/diligent", "--runs-dir", str(runs)]
    child = subprocess.Popen(
        argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    if fault is not None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and child.poll() is None:
            if any(r.kind == "tier_started" for r in records(runs)):
                fault(runs)
                break
            time.sleep(0.2)
    out, err = child.communicate(timeout=900)
    return child.returncode, out, err, child.pid


def owned_by(client: Any, pid: int) -> list[str]:
    flt = {"label": OWNER_LABEL}
    return [
        c.name for c in client.containers.list(all=True, filters=flt)
        if c.labels[OWNER_LABEL].split("/")[2:3] == [str(pid)]
    ]  # fmt: skip


def said(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("tierlock:")]


def check_stopped(
    code: int, out: str, err: str, runs: Path, reason: str, shown: str = "runs"
) -> str:
    """Exit 3 and one line naming the runs directory (as the user gave it: relative to the
    working directory, by default the runs' parent), the reason and the last record."""
    assert code == 3, out + err
    assert "Traceback" not in out + err
    lines = said(err)
    assert len(lines) == 1, err
    assert re.fullmatch(
        rf"tierlock: runs directory {re.escape(shown)}: {reason}; nothing was recorded "
        r"after record \d+ \([a-z_]+(, tier [a-z-]+)?\); once it can be written again, run the same "
        r"command to resume",
        lines[0],
    ), lines[0]
    return lines[0]


def resumed(cwd: Path, runs: Path) -> list[str]:
    code, out, err, _ = tierlock_run(cwd, runs)
    assert code == 0, out + err
    kinds = [r.kind for r in records(runs)]
    assert "run_resumed" in kinds and kinds.count("run_started") == 1
    with Ledger(runs / "ledger.sqlite", readonly=True) as ledger:
        assert ledger.verify().ok
    return [r.payload["outcome"] for r in records(runs) if r.kind == "verdict"]


@pytest.mark.docker
def test_a_runs_directory_that_fills_up_mid_run(tmp_path: Path, docker_client: Any) -> None:
    with tmpfs(tmp_path / "runs", "48m") as runs:
        started = time.monotonic()
        code, out, err, pid = tierlock_run(tmp_path, runs, fault=fill)
        seconds = time.monotonic() - started
        line = check_stopped(code, out, err, runs, "No space left on device")
        assert [r for r in records(runs) if r.kind == "verdict"] == []
        assert owned_by(docker_client, pid) == []
        (runs / "filler").unlink()
        assert resumed(tmp_path, runs) == ["clean"]
    print(f"filled mid-run: exit 3 after {seconds:.1f} s: {line}")


@pytest.mark.docker
def test_a_runs_directory_that_turns_read_only_mid_run(tmp_path: Path, docker_client: Any) -> None:
    with ext4(tmp_path / "runs") as runs:
        started = time.monotonic()
        code, out, err, pid = tierlock_run(tmp_path, runs, fault=turn_read_only)
        seconds = time.monotonic() - started
        line = check_stopped(code, out, err, runs, "Read-only file system")
        assert [r for r in records(runs) if r.kind == "verdict"] == []
        assert owned_by(docker_client, pid) == []
        repair(runs)
        assert resumed(tmp_path, runs) == ["clean"]
    print(f"read-only mid-run: exit 3 after {seconds:.1f} s: {line}")


@pytest.mark.docker
def test_the_disk_fills_while_the_verdict_is_appended(
    tmp_path: Path, docker_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a real run (in this process, so that the fault lands inside the very append): the
    disk fills between the tier's last record and its verdict's commit."""
    import io
    import sys
    from contextlib import redirect_stderr, redirect_stdout

    from tierlock.runner.cli import main

    campaign = tmp_path / "faults.campaign.yaml"
    campaign.write_text(CAMPAIGN)
    with tmpfs(tmp_path / "runs", "48m") as runs:
        real_insert = Ledger._insert
        filled: list[str] = []

        def insert(self: Ledger, kind: str, *args: Any) -> Any:
            if kind == "verdict" and not filled:
                filled.append(str(fill(runs)))
            return real_insert(self, kind, *args)

        def tierlock_run() -> tuple[int, str, str]:
            out, err = io.StringIO(), io.StringIO()
            argv = ["tierlock", "run", str(campaign), "--model", "tierlock/diligent",
                    "--runs-dir", str(runs)]  # fmt: skip
            with (
                monkeypatch.context() as m, redirect_stdout(out), redirect_stderr(err),
                pytest.raises(SystemExit) as exit_,
            ):  # fmt: skip
                m.setattr(sys, "argv", argv)
                main()
            return int(exit_.value.code or 0), out.getvalue(), err.getvalue()

        monkeypatch.setattr(Ledger, "_insert", insert)
        code, out, err = tierlock_run()
        line = check_stopped(code, out, err, runs, "No space left on device", shown=str(runs))
        assert filled, "the verdict was never appended"
        before = records(runs)
        assert before and before[-1].kind == "audit_result"  # the verdict is not there
        assert f"after record {before[-1].seq} (audit_result, tier tool-restricted)" in line
        monkeypatch.setattr(Ledger, "_insert", real_insert)
        (runs / "filler").unlink()
        code, out, err = tierlock_run()
        assert code == 0, out + err
        after = records(runs)
        assert [r.kind for r in after[len(before):]][:1] == ["run_resumed"]
        assert [r.payload["outcome"] for r in after if r.kind == "verdict"] == ["clean"]
        with Ledger(runs / "ledger.sqlite", readonly=True) as ledger:
            assert ledger.verify().ok
    print(f"the disk filled inside the verdict's append: {line}")
