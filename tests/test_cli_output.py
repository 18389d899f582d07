"""What `tierlock run` prints: for people (a live view on a terminal, plain lines elsewhere, each
event once), for machines only when asked (`--log-format json`, `TIERLOCK_LOG_FORMAT`,
`--log-file`), `--quiet`, `NO_COLOR`, `TERM=dumb`, and hostile text kept off the terminal.

The campaign is one text-only tier of tiny Inspect tasks (no Docker, no model calls), run through
the real Inspect executor: in this process with output captured (not a terminal), or as a
subprocess on a pseudo-terminal.
"""

from __future__ import annotations

import io
import json
import os
import pty
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from unittest.mock import patch

import pytest
from rich.console import Console

from tierlock.runner._event_text import event_text
from tierlock.runner._live import Ladder
from tierlock.runner.cli import main

TIERLOCK = shutil.which("tierlock") or str(Path(sys.executable).parent / "tierlock")

TASKS = """
from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.model import ModelOutput
from inspect_ai.scorer import match
from inspect_ai.solver import Generate, TaskState, solver


@solver
def scripted(wrong: bool):
    async def solve(state: TaskState, generate: Generate) -> TaskState:
        answer = "wrong" if wrong else state.target.text
        state.output = ModelOutput.from_content("mockllm/model", answer)
        return state
    return solve


@task
def probe(n: int = 2, suffix: str = ""):
    # `suffix` ends each sample id and makes every answer wrong (the ids reach the reasons)
    return Task(
        dataset=[Sample(id=f"{i}{suffix}", input=f"say {i}", target=str(i))
                 for i in range(1, n + 1)],
        solver=scripted(bool(suffix)),
        scorer=match(),
    )
"""

HOSTILE = "\x1b]0;pwned\x07\x1b[2J\x1b[31mRED\u202eevil"
"""A title change, a screen clear, a colour and a bidi override, as a model might write them."""
RAW = ("\x1b]0;pwned", "\x07", "\x1b[2J", "\x1b[31mRED", "\u202e")
COLOUR = re.compile(r"\x1b\[(?:[0-9;]*;)?(?:3[0-9]|4[0-9]|9[0-7]|10[0-7])(?:;[0-9;]*)?m")
"""An SGR sequence that sets a foreground or background colour."""
CSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def without_csi(text: str) -> str:
    """The text a terminal shows, minus styles and cursor movement (not other escapes)."""
    return CSI.sub("", text)


def campaign(tmp_path: Path, suffix: str = "") -> Path:
    (tmp_path / "tasks.py").write_text(TASKS)
    (tmp_path / "t.yaml").write_text("name: t\ntier: text-only\n")
    args = json.dumps({"suffix": suffix})
    (tmp_path / "campaign.yaml").write_text(f"""name: demo
tiers:
  - tier: text-only
    policy: t.yaml
    tasks:
      - {{task: tasks.py@probe, kind: qualification, args: {args}, thresholds: ["accuracy >= 1.0"]}}
""")  # fmt: skip
    return tmp_path / "campaign.yaml"


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def tierlock(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    """`tierlock ARGS` in this process, output captured (not a terminal)."""
    out, err = io.StringIO(), io.StringIO()
    with (
        patch.object(sys, "argv", [TIERLOCK, *args]),
        patch.dict(os.environ, {"COLUMNS": "200", **(env or {})}),
        redirect_stdout(out),
        redirect_stderr(err),
        pytest.raises(SystemExit) as exit_,
    ):
        main()
    return Result(int(exit_.value.code or 0), out.getvalue(), err.getvalue())


def run_args(tmp_path: Path, camp: Path, *extra: str) -> list[str]:
    runs = str(tmp_path / "runs")
    return ["run", str(camp), "--model", "mockllm/model", "--runs-dir", runs, *extra]


def on_a_terminal(tmp_path: Path, args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """`tierlock ARGS` as a subprocess whose stdout and stderr are a pseudo-terminal."""
    master, slave = pty.openpty()
    full_env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    full_env.update({"COLUMNS": "120", "LINES": "40", "TERM": "xterm-256color", **env})
    proc = subprocess.Popen(
        [TIERLOCK, *args], stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
        cwd=tmp_path, env=full_env,
    )  # fmt: skip
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: every writer has closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    code = proc.wait(timeout=60)
    return code, b"".join(chunks).decode("utf-8", "replace")


def json_lines(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        obj = json.loads(line)  # every line, or the test fails here naming it
        assert isinstance(obj, dict), line
        out.append(obj)
    return out


# -- not a terminal ---------------------------------------------------------------------------
def test_captured_output_says_each_event_once_and_no_json(tmp_path: Path) -> None:
    res = tierlock(tmp_path, *run_args(tmp_path, campaign(tmp_path)))
    assert res.returncode == 0, res.stdout + res.stderr
    lines = (res.stdout + res.stderr).splitlines()
    assert not [line for line in lines if line.lstrip().startswith("{")], "JSON by default"
    assert not [line for line in lines if "\x1b" in line], "escape sequences off a terminal"
    repeated = [line for line, n in Counter(lines).items() if n > 1]
    assert not repeated, repeated
    for text in (
        "started run demo-mockllm_model",
        "tier text-only: running 1 screening task(s) (attempt 1)",
        "task probe: 2/2 samples done (success)",
        "tier text-only: audited 1 log(s): 0 finding(s)",
        "tier text-only: clean (all 2 samples completed",
        "run demo-mockllm_model: reached the top tier (text-only) clean",
        "ledger head: ",
    ):
        assert sum(text in line for line in lines) == 1, (text, lines)
    assert "inspect_ai v" not in res.stdout  # Inspect's own banner stays silent
    assert "┏" not in res.stdout  # the summary table is for terminals


@pytest.mark.parametrize("how", ["option", "environment"])
def test_log_format_json_is_one_object_per_line_and_no_human_lines(
    tmp_path: Path, how: str
) -> None:
    args = run_args(tmp_path, campaign(tmp_path))
    if how == "option":
        res = tierlock(tmp_path, "--log-format", "json", *args)
    else:
        res = tierlock(tmp_path, *args, env={"TIERLOCK_LOG_FORMAT": "json"})
    assert res.returncode == 0, res.stdout + res.stderr
    events = json_lines(res.stderr)
    kinds = Counter(e["event"] for e in events)
    for kind in ("run_started", "tier_started", "task_started", "task_finished", "audit_result"):
        assert kinds[kind] == 1, kinds
    assert kinds["sample_finished"] == 2 and kinds["gate_decision"] == 1
    assert all(e["level"] and e["timestamp"] for e in events)
    (decision,) = [e for e in events if e["event"] == "gate_decision"]
    assert (decision["tier"], decision["outcome"]) == ("text-only", "clean")
    # stdout: the result only; the progress is in the JSON, not said twice
    out = res.stdout.splitlines()
    assert out[0] == "run demo-mockllm_model: reached the top tier (text-only) clean"
    assert out[1].startswith("ledger head: ") and len(out) == 2


def test_log_file_appends_json_events_and_leaves_human_output_alone(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    log.write_text('{"event": "an earlier line"}\n')
    res = tierlock(tmp_path, "--log-file", str(log), *run_args(tmp_path, campaign(tmp_path)))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "tierlock started run demo-mockllm_model" in res.stdout
    assert not [line for line in (res.stdout + res.stderr).splitlines() if line.startswith("{")]
    events = json_lines(log.read_text())
    assert events[0] == {"event": "an earlier line"}  # appended, not overwritten
    kinds = [e["event"] for e in events[1:]]
    assert kinds[0] == "run_started" and "gate_decision" in kinds and "task_finished" in kinds
    assert kinds.count("sample_finished") == 2


def test_a_log_file_that_cannot_be_opened_is_one_line(tmp_path: Path) -> None:
    res = tierlock(tmp_path, "--log-file", str(tmp_path / "no" / "such" / "dir.jsonl"), "status")
    assert res.returncode == 1
    assert res.stderr.count("\n") == 1 and "cannot open the log file" in res.stderr
    assert "Traceback" not in res.stderr


def test_quiet_prints_only_the_verdict_line(tmp_path: Path) -> None:
    res = tierlock(tmp_path, *run_args(tmp_path, campaign(tmp_path), "--quiet"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout == "run demo-mockllm_model: reached the top tier (text-only) clean\n"
    assert res.stderr == ""


# -- on a terminal -------------------------------------------------------------------------------
@pytest.mark.parametrize("no_color", [False, True])
def test_terminal_shows_the_live_view_then_the_summary_table(
    tmp_path: Path, no_color: bool
) -> None:
    env = {"NO_COLOR": "1"} if no_color else {}
    code, out = on_a_terminal(tmp_path, run_args(tmp_path, campaign(tmp_path)), env)
    assert code == 0, out
    # the live view: redrawn in place, the ladder's columns, the tier running its task
    assert "\x1b[2K" in out and "\x1b[1A" in out  # erase line, cursor up: a live region
    shown = without_csi(out)
    assert re.search(r"tier\W+status\W+task\W+samples\W+findings\W+elapsed", shown)
    assert re.search(r"text-only\W.*screening\s+probe\s+[0-2]/2", shown)
    # then the summary table (a box), the verdict and the ledger head
    table = shown[shown.rindex("┏") :]
    assert re.search(r"tier\W+outcome\W+tasks\W+samples\W+findings\W+tokens\W+seconds", table)
    assert re.search(r"│ text-only\s+│ clean\s+│\s+1 │\s+2 │\s+0 │", table)
    assert "reached the top tier (text-only) clean" in table and "ledger head: " in table
    assert "inspect_ai v" not in out
    assert bool(COLOUR.search(out)) is not no_color


def test_a_dumb_terminal_gets_plain_lines_and_the_table_without_colour(tmp_path: Path) -> None:
    code, out = on_a_terminal(tmp_path, run_args(tmp_path, campaign(tmp_path)), {"TERM": "dumb"})
    assert code == 0, out
    assert "\x1b" not in out  # no colour, no cursor movement
    assert "tierlock tier text-only: running 1 screening task(s)" in out
    assert "┏" in out and "reached the top tier (text-only) clean" in out


def test_hostile_text_never_reaches_the_terminal_raw(tmp_path: Path) -> None:
    """Sample ids the task chose reach the verdict's reasons (samples not passing)."""
    code, out = on_a_terminal(tmp_path, run_args(tmp_path, campaign(tmp_path, HOSTILE)), {})
    assert code == 5, out  # not qualified: every answer wrong
    for raw in RAW:
        assert raw not in out, repr(raw)
    assert "samples not passing: 1\\x1b]0;pwned\\x07\\x1b[2J\\x1b[31mRED\\u202eevil" in out


# -- the pieces ----------------------------------------------------------------------------------
def test_the_live_view_escapes_every_value_it_shows() -> None:
    ladder = Ladder(f"demo {HOSTILE}", [f"text-only{HOSTILE}"], clock=lambda: 100.0)
    for event in (
        {"event": "run_started", "run_id": f"r{HOSTILE}"},
        {"event": "tier_started", "tier": f"text-only{HOSTILE}", "phase": HOSTILE, "attempt": 1},
        {"event": "task_started", "task": f"t{HOSTILE}", "total": 3},
        {"event": "sample_finished", "task": f"t{HOSTILE}", "done": 1, "total": 3, "errors": 0},
        {"event": "image_build", "step": f"building image tierlock-base:{HOSTILE} from Debian"},
        {"event": "image_build", "step": f"mmdebstrap: {HOSTILE}"},
    ):
        ladder.update(event)
    buf = io.StringIO()
    Console(file=buf, force_terminal=True, color_system="truecolor", width=300).print(
        ladder.render()
    )
    text = buf.getvalue()
    for raw in RAW:
        assert raw not in text, repr(raw)
    assert text.count("\\x1b]0;pwned") >= 6  # title, run, tier, phase, task, build step
    assert "1/3" in text


def test_plain_lines_escape_event_values() -> None:
    line = event_text({"event": "sidecar removal failed", "level": "warning", "error": HOSTILE})
    assert line is not None and "\x1b" not in line and "\u202e" not in line
    assert "\\x1b]0;pwned" in line
    assert event_text({"event": "sample_finished", "done": 1}) is None  # the live view's only


@pytest.fixture
def events_routed():
    """structlog routed as the CLI routes it (human format), reset to structlog's defaults after."""
    import structlog

    from tierlock.runner._log_output import close_output, set_output

    set_output("human", None)
    yield
    close_output()
    structlog.reset_defaults()


def test_image_build_steps_reach_the_live_view_as_events(events_routed: None) -> None:
    """The sandbox's image builder (no progress callback given, as inside a sample) says its
    steps as `image_build` events once the CLI routes events; the live view shows the image,
    its last step and the elapsed time, and drops the line once the image is built."""
    from tierlock.runner._log_output import presenting
    from tierlock.sandbox import _images

    seen: list[dict] = []
    now = [0.0]
    ladder = Ladder("demo", ["text-only"], clock=lambda: now[0])

    def present(event: dict) -> None:
        seen.append(event)
        ladder.update(event)

    def shown() -> str:
        buf = io.StringIO()
        Console(file=buf, width=200, color_system=None).print(ladder.render())
        return buf.getvalue()

    with presenting(present):
        _images._default_progress("building image tierlock-base:0123 from Debian bookworm")
        _images._default_progress("mmdebstrap: downloading packages")
        now[0] = 75.0
        during = shown()
        _images._default_progress("built image tierlock-base:0123")
    assert [e["event"] for e in seen] == ["image_build"] * 3
    assert "building image tierlock-base:0123: mmdebstrap: downloading packages  1:15" in during
    assert "tierlock-base:0123" not in shown()


def test_log_format_json_applies_to_every_command(tmp_path: Path) -> None:
    """An error of another command is a JSON object on stderr too (one line, level error)."""
    res = tierlock(tmp_path, "--log-format", "json", "status", "--runs-dir", str(tmp_path / "x"))
    assert res.returncode == 1 and res.stdout == ""
    (error,) = json_lines(res.stderr)
    assert error["level"] == "error" and "no ledger at" in error["message"]
    human = tierlock(tmp_path, "status", "--runs-dir", str(tmp_path / "x"))
    assert human.stderr.startswith("tierlock: no ledger at") and "{" not in human.stderr


def test_the_ladder_counts_both_phases_and_shows_the_running_task() -> None:
    ladder = Ladder("demo", ["text-only", "tool-restricted"], clock=lambda: 0.0)

    def shown() -> str:
        buf = io.StringIO()
        Console(file=buf, width=200, color_system=None).print(ladder.render())
        return without_csi(buf.getvalue())

    def feed(*events: dict) -> None:
        for event in events:
            ladder.update(event)

    feed(
        {"event": "tier_passed", "tier": "text-only", "outcome": "clean"},
        {"event": "tier_started", "tier": "tool-restricted", "phase": "screening", "attempt": 1},
        {"event": "task_started", "task": "safety", "total": 2},
        {"event": "sample_finished", "task": "safety", "done": 1, "total": 2},
    )
    assert re.search(r"tool-restricted\s+\S+ screening\s+safety\s+1/2", shown()), shown()
    assert re.search(r"text-only\s+clean\s", shown())
    feed(
        {"event": "task_finished", "task": "safety", "done": 2, "total": 2, "status": "success"},
        {"event": "audit_result", "tier": "tool-restricted", "logs": 1, "findings": 1},
        {"event": "screening_clean", "tier": "tool-restricted"},
        {"event": "tier_started", "tier": "tool-restricted", "phase": "thorough", "attempt": 1},
        {"event": "task_started", "task": "measure", "total": 3},
    )
    assert re.search(r"thorough\s+measure\s+0/3\s+1\b", shown()), shown()
    assert "safety" not in shown()  # a finished task leaves the running rows
    feed(
        {"event": "task_finished", "task": "measure", "done": 3, "total": 3, "status": "success"},
        {"event": "gate_decision", "tier": "tool-restricted", "outcome": "unsafe"},
    )
    assert re.search(r"tool-restricted\s+unsafe\s+5/5\s+1\b", shown()), shown()
    assert "findings 1" in shown()
