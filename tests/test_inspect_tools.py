"""Inspect's own tools on tierlock's output: eval-set retry on resume, `inspect log dump`,
`inspect view`.

One text-only tier (32 samples) against `tests/_fault_server.py` through Inspect's `openai`
provider. The endpoint refuses one sample's calls with a 400 (no retry fixes it) during the first
`tierlock run`: Inspect retries that sample (`retry_on_error`) and `eval_set` retries the task
(`retry_attempts`), reusing the samples that finished; the tier ends incomplete (exit 3). The
refusal is lifted and `tierlock run` again resumes the tier: only the failed sample is sent to
the model again, and the tier is clean. The logs that run wrote are then read by `inspect log
dump` and served by `inspect view` as Inspect's own logs are.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests._fault_server import FaultServer, script_brain
from tierlock.runner import Ledger
from tierlock.runner._inspect import RETRY_ATTEMPTS, RETRY_ON_ERROR
from tierlock.tasks._contract import SampleContract

ROOT = Path(__file__).resolve().parent.parent
MODEL = "openai/tools-model"
PROVIDER_PROBE = "Please say 'hello, world'"  # Inspect's openai provider asks it once per run
CAMPAIGN = f"""\
name: inspect-tools
tiers:
  - tier: text-only
    policy: {ROOT}/policies/text-only.yaml
    tasks:
      - task: {ROOT}/tasks/text_only/qualification.py@text_only_qualification
        kind: qualification
        thresholds: ["accuracy >= 0.9"]
    limits: {{messages: 10, tokens: 100k, time: 5m}}
"""


def _tool(name: str) -> str:
    return shutil.which(name) or name


def _scripts() -> dict[str, Any]:
    from tierlock.tasks.text_only import qualification

    scripts = {}
    for sample in qualification.dataset():
        contract = SampleContract.of(sample.metadata)
        assert contract is not None
        scripts[str(sample.input).strip()] = contract.solution
    return scripts


def _prompts(requests: list[dict[str, Any]]) -> Counter[str]:
    return Counter(r["prompt"].strip() for r in requests if r["prompt"] != PROVIDER_PROBE)


@pytest.fixture(scope="module")
def resumed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two `tierlock run`s of one campaign: the first with one sample refused, then resumed."""
    tmp = tmp_path_factory.mktemp("inspect-tools")
    campaign = tmp / "tools.campaign.yaml"
    campaign.write_text(CAMPAIGN)
    scripts = _scripts()
    refused = sorted(scripts)[len(scripts) // 2]  # any one sample
    runs = tmp / "runs"
    out: dict[str, Any] = {"runs": runs, "refused": refused, "samples": len(scripts)}
    with FaultServer(script_brain(scripts)) as server:
        env = {**os.environ, "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "k-test"}
        argv = [_tool("tierlock"), "run", str(campaign), "--model", MODEL, "--runs-dir", str(runs)]
        server.refuse[refused[:60]] = 400
        first = subprocess.run(argv, env=env, cwd=tmp, capture_output=True, text=True, timeout=600)
        out["first"], out["first_calls"] = first, _prompts(server.requests)
        out["first_logs"] = sorted(runs.rglob("*.eval"))
        seen = len(server.requests)
        server.refuse.clear()
        second = subprocess.run(argv, env=env, cwd=tmp, capture_output=True, text=True, timeout=600)
        out["second"], out["second_calls"] = second, _prompts(server.requests[seen:])
    with Ledger(runs / "ledger.sqlite") as ledger:
        records = list(ledger.records())
    out["verdicts"] = [r.payload["outcome"] for r in records if r.kind == "verdict"]
    out["runs_started"] = [r.kind for r in records if r.kind in ("run_started", "run_resumed")]
    return out


def test_a_resumed_tier_reruns_only_the_failed_sample_as_eval_set_retries(
    resumed: dict[str, Any],
) -> None:
    first, second, refused = resumed["first"], resumed["second"], resumed["refused"]
    assert first.returncode == 3, first.stdout + first.stderr  # incomplete: run again
    assert second.returncode == 0, second.stdout + second.stderr
    assert resumed["verdicts"] == ["incomplete", "clean"]
    assert resumed["runs_started"] == ["run_started", "run_resumed"]  # the same run, resumed

    calls = resumed["first_calls"]
    # within the first run: the refused sample is retried (Inspect's retry_on_error, inside each
    # of eval_set's task attempts); every other sample was asked once and reused after that
    assert calls[refused] == (1 + RETRY_ON_ERROR) * (1 + RETRY_ATTEMPTS), calls[refused]
    others = {p: n for p, n in calls.items() if p != refused}
    assert len(others) == resumed["samples"] - 1 and set(others.values()) == {1}, others
    # the resumed run asks the model for the failed sample only
    assert resumed["second_calls"] == Counter({refused: 1}), resumed["second_calls"]


def _final_log(runs: Path) -> Path:
    from inspect_ai.log import read_eval_log

    done = [p for p in runs.rglob("*.eval") if read_eval_log(str(p), header_only=True).status
            == "success"]  # fmt: skip
    assert len(done) == 1, sorted(runs.rglob("*.eval"))
    return done[0]


def test_inspect_log_dump_reads_tierlock_tier_logs(resumed: dict[str, Any]) -> None:
    final = _final_log(resumed["runs"])
    done = subprocess.run([_tool("inspect"), "log", "dump", str(final)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    log = json.loads(done.stdout)
    assert log["status"] == "success"
    assert log["eval"]["task"] == "text_only_qualification"
    assert log["eval"]["model"] == MODEL
    assert log["eval"]["metadata"]["tierlock"]["tier"] == "text-only"  # tierlock's task info
    samples = log["samples"]
    assert len(samples) == resumed["samples"]
    assert not [s["id"] for s in samples if s.get("error")]
    refused = [s for s in samples if str(s["input"]).strip() == resumed["refused"]]
    assert len(refused) == 1 and refused[0]["scores"], refused
    # the failed attempts' logs stay readable too (the ledger may cite them)
    for path in resumed["first_logs"]:
        head = subprocess.run([_tool("inspect"), "log", "dump", "--header-only", str(path)],
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert head.returncode == 0, head.stderr
        assert json.loads(head.stdout)["status"] == "error"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def test_inspect_view_lists_and_serves_the_runs_directory(resumed: dict[str, Any]) -> None:
    runs: Path = resumed["runs"]
    port = _free_port()
    argv = [_tool("inspect"), "view", "--log-dir", str(runs), "--host", "127.0.0.1",
            "--port", str(port)]  # fmt: skip
    base = f"http://127.0.0.1:{port}/api"
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as proc:  # fmt: skip
        try:
            listing = None
            deadline = time.monotonic() + 90
            while listing is None and time.monotonic() < deadline and proc.poll() is None:
                try:
                    listing = _get(f"{base}/log-files")
                except (urllib.error.URLError, ConnectionError):
                    time.sleep(0.5)
            assert listing is not None, f"inspect view did not answer (exit {proc.poll()})"
            listed = {f["name"] for f in listing["files"]}
            on_disk = {p.resolve().as_uri() for p in runs.rglob("*.eval")}
            assert listed == on_disk, (listed, on_disk)  # every tier log, nothing else
            final = _final_log(runs).resolve().as_uri()
            header = _get(f"{base}/logs/{quote(final, safe='')}?header-only=1")
            assert header["status"] == "success"
            assert header["eval"]["task"] == "text_only_qualification"
            assert header["results"]["completed_samples"] == resumed["samples"]
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
