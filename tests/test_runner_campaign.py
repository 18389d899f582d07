"""Campaign files: validation with file:line errors, ladder checks, the shipped default."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tierlock.runner import CampaignError, load_campaign
from tierlock.runner._campaign import DEFAULT_CAMPAIGN, Threshold

POLICIES = {
    "t.yaml": "name: t\ntier: text-only\n",
    "r.yaml": "name: r\ntier: tool-restricted\ntools: {allow: [bash]}\n",
}


def write(tmp_path: Path, text: str) -> Path:
    for name, body in POLICIES.items():
        (tmp_path / name).write_text(body)
    (tmp_path / "task.py").write_text("")
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


GOOD = """\
name: demo
tiers:
  - tier: text-only
    policy: t.yaml
    tasks:
      - task: task.py@qual
        kind: qualification
        args: {n: 3}
        thresholds: ["accuracy >= 0.9", "refusal/mean > 0.5"]
    limits: {messages: 10, tokens: 200k, time: 10m}
  - tier: tool-restricted
    policy: r.yaml
    tasks:
      - {task: task.py@safety, kind: safety}
    gate: {max_severity: low, approval_required: true}
"""


def problems(path: Path) -> list[str]:
    with pytest.raises(CampaignError) as e:
        load_campaign(path)
    return e.value.lines()


def test_a_good_campaign_loads(tmp_path: Path) -> None:
    c = load_campaign(write(tmp_path, GOOD))
    t0, t1 = c.tiers
    assert (t0.limits.tokens, t0.limits.time, t0.limits.messages) == (200_000, 600.0, 10)
    assert t0.tasks[0].thresholds == [
        Threshold(scorer=None, metric="accuracy", op=">=", value=0.9),
        Threshold(scorer="refusal", metric="mean", op=">", value=0.5),
    ]
    assert t0.tasks[0].args == {"n": 3}
    assert (t1.gate.max_severity, t1.gate.approval_required) == ("low", True)
    assert t0.gate.max_severity == "none"  # default: any finding fails
    assert c.policy_path(t1) == (tmp_path / "r.yaml").resolve()
    assert c.task_ref(t0.tasks[0]) == f"{(tmp_path / 'task.py').resolve()}@qual"
    assert len(c.digest()) == 64


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "        args: {n: 3}\n",
            "        args: {n: 3}\n        weight: 2\n",
            "c.yaml:9:9: tiers[0].tasks[0].weight: unknown key; allowed here: task, kind, args, thresholds",
        ),
        (
            "kind: qualification",
            "kind: capability",
            "c.yaml:7:15: tiers[0].tasks[0].kind: 'capability' is not one of qualification, safety, thorough",
        ),
        (
            '"accuracy >= 0.9"',
            '"accuracy ~ 0.9"',
            "c.yaml:9:22: tiers[0].tasks[0].thresholds[0]: 'accuracy ~ 0.9' is not a threshold",
        ),
        (
            "max_severity: low",
            "max_severity: severe",
            "c.yaml:15:26: tiers[1].gate.max_severity: 'severe' is not one of none, low, medium, high, critical",
        ),
        (
            "tokens: 200k",
            "tokens: lots",
            "c.yaml:10:36: tiers[0].limits.tokens: 'lots' is not a count",
        ),
        (
            "policy: r.yaml",
            "policy: missing.yaml",
            "c.yaml:12:13: tiers[1].policy: policy file missing.yaml does not exist",
        ),
        (
            "task: task.py@safety",
            "task: nope.py@safety",
            "c.yaml:14:16: tiers[1].tasks[0].task: task file nope.py does not exist",
        ),
        (
            "policy: r.yaml",
            "policy: t.yaml",
            "c.yaml:12:13: tiers[1].policy: policy t.yaml is for tier text-only, not tool-restricted",
        ),
        (
            "  - tier: tool-restricted\n",
            "  - tier: text-only\n",
            "c.yaml:3:3: tiers: Value error, each tier may appear only once",
        ),
        (
            "    limits: {messages: 10",
            "    on_not_qualified: carry-on\n    limits: {messages: 10",
            "c.yaml:10:23: tiers[0].on_not_qualified: 'carry-on' is not one of stop, continue",
        ),
        (
            "kind: qualification",
            "kind: thorough",
            "c.yaml:6:7: tiers[0].tasks: Value error, thorough tasks need a safety task in the "
            "same tier",
        ),
    ],
)
def test_errors_name_file_line_and_key(tmp_path, monkeypatch, old, new, expected) -> None:
    monkeypatch.chdir(tmp_path)
    assert old in GOOD
    lines = problems(write(tmp_path, GOOD.replace(old, new, 1)))
    assert any(line.startswith(expected.replace("Value error, ", "")) for line in lines), lines


def test_tiers_must_go_up(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    text = GOOD.replace("tier: text-only", "tier: XX").replace(
        "tier: tool-restricted", "tier: text-only"
    )
    text = text.replace("tier: XX", "tier: tool-restricted")
    assert any("least permissive first" in line for line in problems(write(tmp_path, text)))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "c.yaml:1:1: the campaign file is empty"),
        ("name: x\ntiers: [\n", "c.yaml:3:1: invalid YAML"),
        ("- 1\n", "c.yaml:1:1: a campaign is a mapping"),
        ("name: x\nname: y\ntiers: []\n", "c.yaml:2:1: name: duplicate key"),
        ("name: x\n", "c.yaml:1:1: tiers: required key is missing"),
    ],
)
def test_malformed_files(tmp_path, monkeypatch, text, expected) -> None:
    monkeypatch.chdir(tmp_path)
    assert any(line.startswith(expected) for line in problems(write(tmp_path, text)))


def test_policy_problems_point_into_the_policy(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, GOOD)
    (tmp_path / "r.yaml").write_text(
        "name: r\ntier: tool-restricted\nprocess: {privileged: true}\n"
    )
    assert any(line.startswith("r.yaml:3:") for line in problems(path))


def test_cli_reports_one_line_per_problem_and_exit_1(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(
        tmp_path, GOOD.replace("kind: safety", "kind: unsafe").replace("tokens: 200k", "tokens: x")
    )
    res = subprocess.run(
        ["tierlock", "run", "c.yaml", "--runs-dir", "runs"], capture_output=True, text=True
    )
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("tierlock: c.yaml:") for line in lines), lines
    assert "Traceback" not in res.stderr and not (tmp_path / "runs").exists()


def test_the_default_campaign_covers_three_tiers_and_every_kind() -> None:
    c = load_campaign()
    assert c.source == str(DEFAULT_CAMPAIGN.resolve())
    assert [t.tier for t in c.tiers] == ["text-only", "tool-restricted", "networked"]
    for t in c.tiers:
        assert {s.kind for s in t.screening} == {"qualification", "safety"}
        assert all(s.thresholds for s in t.screening)  # the screening gate decides the climb
        assert t.gate.max_severity == "none" and t.on_not_qualified == "stop"
    # the sandboxed tiers measure the model once it is qualified and shown safe there
    assert [bool(t.thorough) for t in c.tiers] == [False, True, True]


THOROUGH = (
    GOOD.replace(
        "      - {task: task.py@safety, kind: safety}\n",
        "      - {task: task.py@measure, kind: thorough}\n"
        "      - {task: task.py@safety, kind: safety}\n"
        "      - {task: task.py@qual2, kind: qualification}\n",
    )
    + "    on_not_qualified: continue\n"
)


def test_thorough_tasks_and_on_not_qualified(tmp_path: Path) -> None:
    c = load_campaign(write(tmp_path, THOROUGH))
    t0, t1 = c.tiers
    assert t0.on_not_qualified == "stop" and t1.on_not_qualified == "continue"
    # phases in their fixed order, whatever the order of the list
    assert [s.name for s in t1.screening] == ["qual2", "safety"]
    assert [s.name for s in t1.thorough] == ["measure"] and not t0.thorough
    assert [s.name for s in t1.only(t1.thorough).tasks] == ["measure"]


def test_campaigns_written_before_thorough_tasks_keep_their_digest(tmp_path: Path) -> None:
    """A run started by the previous version resumes: the new key's default is not hashed."""
    plain = load_campaign(write(tmp_path, GOOD))
    explicit = load_campaign(
        write(tmp_path, GOOD.replace("    limits:", "    on_not_qualified: stop\n    limits:"))
    )
    assert plain.digest() == explicit.digest()
    assert plain.digest() == (  # what the previous version computed for GOOD
        "7712fa6eb22d93440d7c0d64d658136de2f7fd16c1f192b5b4ec4338dc97e995"
    )
    cont = GOOD.replace("    limits:", "    on_not_qualified: continue\n    limits:")
    assert load_campaign(write(tmp_path, cont)).digest() != plain.digest()
