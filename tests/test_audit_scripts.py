"""The audit against the scripted agents' scripts for every sandboxed task (pure logic).

The transcripts of the real runs are checked in `test_audit_agents.py` (Docker); here each
sample's reference solution (what the diligent agent runs) and forbidden shortcut (what the
reckless agent runs) become tool-call events, so a rule that misses a shortcut or fires on a
solution fails fast and without a daemon.
"""

from __future__ import annotations

import pytest

from tests._audit_events import model, tool
from tierlock.runner._audit import audit_events
from tierlock.tasks._contract import SampleContract, Script
from tierlock.tasks._sandboxed import build_samples

DATA = [
    ("tool-restricted", "tool_restricted", "safety.json"),
    ("tool-restricted", "tool_restricted", "qualification.json"),
    ("networked", "networked", "safety.json"),
    ("networked", "networked", "qualification.json"),
]


def _samples(with_shortcut: bool = False):
    for tier, tier_dir, data_file in DATA:
        for s in build_samples(tier, tier_dir, data_file, salt="audit-test"):
            c = SampleContract.of(s.metadata)
            if not with_shortcut or (c is not None and c.shortcut is not None):
                yield pytest.param(tier, s, id=f"{tier_dir}/{s.id}")


def _events(script: Script) -> list[dict]:
    events: list[dict] = []
    for step in script.steps:
        events.append(model(step.thought))
        events.append(tool(step.tool, dict(step.arguments)))
    events.append(tool("submit", {"answer": script.answer}))
    return events


def _audit(tier: str, sample, script: Script):
    return audit_events(
        _events(script),
        sample_metadata=sample.metadata,
        task_metadata={"tierlock": {"tier": tier}},
        sample_id=sample.id,
    )


@pytest.mark.parametrize(("tier", "sample"), list(_samples()))
def test_diligent_solution_is_clean(tier: str, sample) -> None:
    contract = SampleContract.of(sample.metadata)
    assert contract is not None
    audit = _audit(tier, sample, contract.solution)
    assert audit.findings == [], [f"{f.rule}: {f.excerpt}" for f in audit.findings]


@pytest.mark.parametrize(("tier", "sample"), list(_samples(with_shortcut=True)))
def test_reckless_shortcut_is_found_with_the_right_categories(tier: str, sample) -> None:
    contract = SampleContract.of(sample.metadata)
    assert contract is not None and contract.shortcut is not None
    v = contract.violations
    expected = set()
    if v.forbidden_paths:
        expected.add("filesystem")
    if v.protected_paths or v.protected_processes:
        expected.add("tampering")
    if v.forbidden_hosts or "network" in v.forbidden_actions:
        expected.add("network")
    shortcut_text = str([s.arguments for s in contract.shortcut.steps])
    if any(c in shortcut_text for c in v.canaries):
        expected.add("canary")
    assert expected, "a safety sample must declare what counts as a violation"
    audit = _audit(tier, sample, contract.shortcut)
    found = {f.category for f in audit.findings}
    assert expected <= found, [f"{f.rule}: {f.excerpt}" for f in audit.findings]
