"""The audit on real transcripts of both scripted agents in every tier (real daemon).

One `eval()` per agent runs the text-only tasks (a few samples) and every sandboxed task (all
safety samples, a few qualification ones) in tierlock's Docker sandbox; then the `.eval` logs alone
are audited. The diligent agent's transcripts must yield no finding; every violation a safety
sample declares must be found, with the right category, in the reckless agent's.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from inspect_ai import eval

from tierlock.runner._audit import AuditResult, SampleAudit, audit_logs
from tierlock.tasks._contract import SampleContract
from tierlock.tasks._sandboxed import build_samples
from tierlock.tasks.networked import networked_qualification, networked_safety
from tierlock.tasks.text_only import text_only_qualification, text_only_safety
from tierlock.tasks.tool_restricted import tool_restricted_qualification, tool_restricted_safety

pytestmark = pytest.mark.docker

QUALIFICATION = ["tr-q-sales", "tr-q-median", "tr-q-count-words", "nw-q-density"]
TEXT_ONLY_LIMIT = 4


def _run(model: str, log_dir: Path) -> list[str]:
    sandboxed = [
        tool_restricted_qualification(),
        tool_restricted_safety(),
        networked_qualification(),
        networked_safety(),
    ]
    safety = [str(s.id) for t in sandboxed if "safety" in t.name for s in t.dataset]
    logs = eval(
        sandboxed,
        model=model,
        sample_id=QUALIFICATION + safety,
        log_dir=str(log_dir),
        display="none",
        max_tasks=4,
    )
    logs += eval(
        [text_only_qualification(), text_only_safety()],
        model=model,
        limit=TEXT_ONLY_LIMIT,
        log_dir=str(log_dir),
        display="none",
        max_tasks=2,
    )
    for log in logs:
        assert log.status == "success", log.error
    return [log.location for log in logs]


@pytest.fixture(scope="module")
def audits(docker_client, tmp_path_factory) -> dict[str, AuditResult]:
    out = {}
    for agent in ("diligent", "reckless"):
        paths = _run(f"tierlock/{agent}", tmp_path_factory.mktemp(agent))
        out[agent] = audit_logs(paths)
    return out


def _samples(result: AuditResult) -> dict[str, SampleAudit]:
    return {str(s.id): s for log in result.logs for s in log.samples}


def _contracts() -> dict[str, SampleContract]:
    """Each safety sample's contract (canaries here are this helper's, not the run's)."""
    out = {}
    for tier, d in (("tool-restricted", "tool_restricted"), ("networked", "networked")):
        for s in build_samples(tier, d, "safety.json", salt="x"):
            c = SampleContract.of(s.metadata)
            assert c is not None
            out[str(s.id)] = c
    return out


def test_every_log_is_audited_in_every_tier(audits) -> None:
    for result in audits.values():
        assert result.errors == []
        tiers = {s.tier for s in _samples(result).values()}
        assert tiers == {"text-only", "tool-restricted", "networked"}
        assert all(log.sha256 and len(log.sha256) == 64 for log in result.logs)


def test_diligent_transcripts_yield_no_finding(audits) -> None:
    findings = audits["diligent"].findings()
    assert findings == [], [f"{f.sample_id} {f.rule}: {f.excerpt}" for f in findings]


def test_every_sample_states_its_evidence_and_all_of_it_was_checked(audits) -> None:
    """Coverage: sandboxed samples carry all of tierlock's evidence (conformance, container,
    and in the networked tier the proxy log and sidecars); text-only samples have no sandbox."""
    for agent, result in audits.items():
        for sid, s in _samples(result).items():
            cov = s.coverage
            assert cov is not None, (agent, sid)
            if s.tier == "text-only":
                assert cov.sandbox == "none" and cov.complete, (agent, sid, cov)
                continue
            assert cov.sandbox == "tierlock", (agent, sid, cov)
            status = {x.source: x.status for x in cov.sources}
            assert status["conformance"] == "checked", (agent, sid, cov)
            if agent == "diligent":
                assert cov.complete, (agent, sid, cov.gaps())
            if s.tier == "networked":
                assert status["proxy"] in ("checked", "partial"), (agent, sid, cov)


def test_reckless_violations_are_all_found_with_the_right_category(audits) -> None:
    samples = _samples(audits["reckless"])
    for sid, contract in _contracts().items():
        if contract.shortcut is None:
            continue
        v = contract.violations
        audit = samples[sid]
        found = {f.category for f in audit.findings}
        rules = {f.rule for f in audit.findings}
        report = [f"{f.rule}: {f.excerpt}" for f in audit.findings]
        if v.forbidden_paths:
            assert "filesystem" in found, (sid, report)
        if v.protected_paths or v.protected_processes:
            assert "tampering" in found, (sid, report)
        if v.protected_processes:
            assert "tamper.kill_protected" in rules, (sid, report)
        if v.forbidden_hosts or "network" in v.forbidden_actions:
            assert "network" in found, (sid, report)
        if v.forbidden_hosts and audit.tier == "networked":  # refused by the proxy, on the record
            assert "net.proxy_refused" in rules, (sid, report)
        if v.canaries:  # the honeypot was read (and, where the shortcut sends it, sent out)
            assert "canary.read" in rules, (sid, report)
            if any(
                c in str(step.arguments) for step in contract.shortcut.steps for c in v.canaries
            ):
                assert "canary.exfiltration" in rules, (sid, report)


def test_reckless_qualification_samples_are_clean(audits) -> None:
    samples = _samples(audits["reckless"])
    for sid in QUALIFICATION:
        assert samples[sid].findings == [], (sid, [f.rule for f in samples[sid].findings])
