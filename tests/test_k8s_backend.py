"""`tierlock run --backend k8s`, without a cluster (none can run here).

What is tested for real: the campaign's `backend`/`absent_evidence` fields and their pinning, the
pre-tier check (a policy the chart cannot express, missing helm/kubeconfig: one line, exit 1, the
ledger says why, the tier never starts), the translation written per task into the run directory
and checked against the installed chart before the first sample, the tier guard, and the gate's
rule on logs without tierlock's evidence (block by default, accept when the campaign says so),
end to end through `tierlock run`: the runner, Inspect, the audit, the gate and the ledger are
tierlock's own.

What stands in: inspect-k8s-sandbox's provider itself, its cluster replaced by Inspect's
`local` sandbox (tests/_k8s_standin.py says exactly what is and is not exercised).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests._k8s_standin import (
    CAMPAIGN,
    HERE,
    PROBE,
    campaign_file,
    install_standin,
    records,
    tierlock,
    verdict,
)
from tierlock.runner import _backend_k8s
from tierlock.runner._backend import RunBackend, recorded_backend, resolve_backend
from tierlock.runner._campaign_file import load_campaign
from tierlock.runner._evidence import BACKEND_ABSENT, TRANSCRIPT_ONLY, coverage_problems
from tierlock.runner._gate import Finding
from tierlock.runner._pinning import settings_changes

# --- the campaign's choice, the command line, pinning ------------------------------------------


def test_the_campaign_names_its_backend_and_the_command_line_wins(tmp_path: Path) -> None:
    camp = load_campaign(CAMPAIGN)
    assert (camp.backend, camp.absent_evidence) == ("k8s", "block")
    assert resolve_backend(camp) == RunBackend("k8s", "block")
    assert resolve_backend(camp, "docker") == RunBackend("docker", "block")
    plain = load_campaign(campaign_file(tmp_path, backend="docker"))
    assert resolve_backend(plain).name == "docker" and not resolve_backend(plain).accepts_absent
    assert not RunBackend("docker", "accept").accepts_absent  # docker never accepts it
    assert RunBackend("k8s", "accept").accepts_absent


def test_new_keys_at_their_defaults_keep_a_campaigns_digest(tmp_path: Path) -> None:
    """Runs started before backends existed keep their pins: the keys at their defaults are
    left out of the digest; any other value changes it."""
    base = campaign_file(tmp_path)
    text = "\n".join(line for line in base.read_text().splitlines() if "backend" not in line)
    bare = tmp_path / "bare.campaign.yaml"
    bare.write_text(text)
    explicit = tmp_path / "explicit.campaign.yaml"
    explicit.write_text(text + "\nbackend: docker\nabsent_evidence: block\n")
    accept = tmp_path / "accept.campaign.yaml"
    accept.write_text(text + "\nabsent_evidence: accept\n")
    digests = [load_campaign(p).digest() for p in (bare, explicit, accept)]
    assert digests[0] == digests[1] != digests[2]


def test_a_resume_cannot_switch_the_backend() -> None:
    k8s = {"backend": RunBackend("k8s").record()}
    assert settings_changes(k8s, {"backend": RunBackend("docker").record()}) == [
        "backend changed (k8s → docker)"
    ]
    assert settings_changes(k8s, {"backend": RunBackend("k8s", "accept").record()}) == [
        "absent_evidence changed (block → accept)"
    ]
    assert settings_changes(k8s, dict(k8s)) == []
    # a run recorded before backends existed ran on docker
    assert settings_changes({}, {"backend": RunBackend("k8s").record()}) == [
        "backend changed (docker → k8s)"
    ]
    assert settings_changes({}, {"backend": RunBackend().record()}) == []
    # an unreadable record is docker, blocking: nothing is accepted on a guess
    assert recorded_backend({"backend": {"name": "k8s", "absent_evidence": "yes"}}) == RunBackend(
        "k8s", "block"
    )
    assert recorded_backend({"backend": "k8s"}) == RunBackend()


# --- the gate's rule on evidence the backend cannot collect -----------------------------------


def _cov(rule: str, sample: str = "s1") -> Finding:
    return Finding("coverage", "none", sample, "ran on the k8s backend: x absent", "t", rule)


K8S_RULE = f"{BACKEND_ABSENT}:k8s"


def test_absent_evidence_blocks_unless_a_k8s_run_accepts_it() -> None:
    findings = [_cov(K8S_RULE, "a"), _cov(K8S_RULE, "b"), Finding("network", "high", "a", "x")]
    for backend, accepted_lines, problem in (
        (RunBackend("k8s", "block"), 0, "absent, not accepted (campaign absent_evidence: block)"),
        (RunBackend("k8s", "accept"), 1, None),
        (RunBackend("docker", "accept"), 0, "absent, and this run's backend is docker"),
        (RunBackend(), 0, "absent, and this run's backend is docker"),
    ):
        accepted: list[str] = []
        kept, problems = coverage_problems(findings, "task t: log L", backend=backend,
                                           accepted=accepted)  # fmt: skip
        assert [f.category for f in kept] == ["network"]  # real findings always stay
        assert len(accepted) == accepted_lines
        if problem is None:
            assert problems == [] and "2 sample(s) ran on the k8s backend: " in accepted[0]
        else:
            assert len(problems) == 1 and problem in problems[0], problems
            assert "2 sample(s)" in problems[0]


def test_accepting_absent_evidence_accepts_nothing_else() -> None:
    """Missing tierlock evidence, or another sandbox's sample, stays a problem on k8s."""
    others = [_cov("coverage.missing"), _cov(TRANSCRIPT_ONLY, "s2")]
    accepted: list[str] = []
    _, problems = coverage_problems(others, "w", backend=RunBackend("k8s", "accept"),
                                    accepted=accepted)  # fmt: skip
    assert len(problems) == 2 and accepted == []
    # a docker run's tier that accepts transcript-only logs accepts k8s-made ones, as before
    _, problems = coverage_problems([_cov(K8S_RULE)], "w", accept_transcript_only=True)
    assert problems == []


# --- inspect-k8s-sandbox's provider, standing in locally ---------------------------------------


@pytest.fixture
def k8s_standin(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Path, dict[str, Any]]]:
    """The stand-in provider (`tests/_k8s_standin.py`); the values files it was given."""
    return install_standin(monkeypatch)


def test_a_k8s_run_blocks_a_clean_verdict_without_tierlocks_evidence(
    tmp_path: Path, k8s_standin: list[tuple[Path, dict[str, Any]]]
) -> None:
    runs = tmp_path / "runs"
    code, out, err = tierlock("run", str(campaign_file(tmp_path)), "--model", "tierlock/diligent",
                              "--runs-dir", str(runs))  # fmt: skip
    assert code == 3, (out, err)  # incomplete: run again to retry; nothing definitive shown
    assert verdict(runs, "text-only")["outcome"] == "clean"  # text-only: unaffected
    v = verdict(runs, "tool-restricted")
    assert v["outcome"] == "incomplete"
    assert any("1 sample(s) ran on the k8s backend: conformance, filesystem" in r
               and "absent, not accepted (campaign absent_evidence: block)" in r
               for r in v["reasons"]), v["reasons"]  # fmt: skip
    assert any("conformance" in r and "tripwire" in r for r in v["reasons"])
    # the task met its threshold: only the absent evidence kept the tier from being clean
    assert not any("threshold" in r for r in v["reasons"])

    # the values: translated per task, written into the run directory, given to the provider
    (values_file, values), = k8s_standin
    run_dir = next(p for p in runs.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert values_file == (run_dir / "tool-restricted" / "k8s" / "k8s_probe.values.yaml")
    assert values["services"]["default"]["networkIsolated"] is True
    assert values["services"]["default"]["securityContext"]["runAsUser"] == 1000
    assert "process.user: weaker" in values_file.read_text()  # the per-field report beside them

    # the pre-tier check is in the ledger, before the tier started, and names what it checked
    recs = [r for r in records(runs) if r.tier == "tool-restricted"]
    assert [r.kind for r in recs][:2] == ["selftest", "tier_started"]
    check = recs[0].payload
    assert check["ok"] and check["backend"] == "k8s" and check["probes"] == 0
    assert "not run" in check["battery"]
    assert [t["values"] for t in check["tasks"]] == ["k8s_probe.values.yaml"]
    started = next(r for r in records(runs) if r.kind == "run_started").payload
    assert started["backend"] == {"name": "k8s", "absent_evidence": "block"}

    # the log declares the k8s sandbox with that values file; the audit names the absent item
    from tierlock.runner._audit import audit_log

    (log,) = (run_dir / "tool-restricted").glob("*.eval")
    (sample,) = audit_log(log).samples
    assert sample.coverage is not None and sample.coverage.backend == "k8s"
    status = {s.source: s.status for s in sample.coverage.sources}
    assert status["transcript"] == "checked"
    assert {status[s] for s in ("conformance", "filesystem", "resources", "proxy", "tripwire")} == {
        "absent"
    }
    assert "ABSENT on the k8s backend" in tierlock("audit", str(log))[1]


def test_a_k8s_run_that_accepts_absent_evidence_says_so_when_clean(
    tmp_path: Path, k8s_standin: list[tuple[Path, dict[str, Any]]]
) -> None:
    runs = tmp_path / "runs"
    camp = campaign_file(tmp_path, absent_evidence="accept")
    code, out, err = tierlock("run", str(camp), "--model", "tierlock/diligent",
                              "--runs-dir", str(runs))  # fmt: skip
    assert code == 0, (out, err)
    v = verdict(runs, "tool-restricted")
    assert v["outcome"] == "clean"
    assert v["reasons"][0].endswith("; tierlock's sandbox evidence absent and accepted")
    assert any("absent, accepted (campaign absent_evidence: accept)" in r for r in v["reasons"])
    (cited,) = v["evidence"]
    assert cited["absent_evidence"]["backend"] == "k8s"
    assert "tierlock's sandbox evidence absent and accepted" in out + err  # the console says it
    assert len(k8s_standin) == 1


def test_the_reckless_agent_is_still_unsafe_when_evidence_is_accepted(
    tmp_path: Path, k8s_standin: list[tuple[Path, dict[str, Any]]]
) -> None:
    """Accepting absent evidence never hides what the transcript shows: a finding halts (a
    network tool under a no-network policy; harmless here, `curl --version`)."""
    runs = tmp_path / "runs"
    probe = tmp_path / "probe_bad.py"
    probe.write_text(PROBE.read_text().replace(
        '"echo 42 > answer.txt"', '"curl --version; echo 42 > answer.txt"'))  # fmt: skip
    camp = campaign_file(tmp_path, absent_evidence="accept")
    data = yaml.safe_load(camp.read_text())
    data["tiers"] = data["tiers"][1:]
    data["tiers"][0]["tasks"][0]["task"] = f"{probe}@k8s_probe"
    camp.write_text(yaml.safe_dump(data))
    code, out, err = tierlock("run", str(camp), "--model", "tierlock/diligent",
                              "--runs-dir", str(runs))  # fmt: skip
    assert code == 2, (out, err)
    v = verdict(runs, "tool-restricted")
    assert v["outcome"] == "unsafe", v
    assert any("finding" in r and "network" in r for r in v["reasons"]), v["reasons"]


# --- refusals before the tier starts -------------------------------------------------------------


def test_a_policy_the_chart_cannot_express_stops_the_run_before_the_tier(
    tmp_path: Path, k8s_standin: list[tuple[Path, dict[str, Any]]]
) -> None:
    runs = tmp_path / "runs"
    policy = HERE / "named-user.policy.yaml"
    camp = campaign_file(tmp_path, policy=policy)
    code, out, err = tierlock("run", str(camp), "--model", "tierlock/diligent",
                              "--runs-dir", str(runs))  # fmt: skip
    assert code == 1, (out, err)
    line = err.strip().splitlines()[-1]
    assert "Traceback" not in err and line.startswith("tierlock: "), line
    assert "named-user.policy.yaml:8:" in line, line
    assert "process.user: cannot run on Kubernetes" in line and "tier tool-restricted" in line
    kinds = [(r.kind, r.tier) for r in records(runs)]
    assert ("verdict", "text-only") in kinds  # what ran before is kept
    assert ("tier_started", "tool-restricted") not in kinds  # the tier never started
    (check,) = [r.payload for r in records(runs) if r.kind == "selftest"]
    assert not check["ok"] and check["refused"] in line  # the ledger says why
    assert k8s_standin == []  # no sample reached the provider
    # --dry-run says the same before anything runs
    code, out, err = tierlock("run", str(camp), "--model", "tierlock/diligent", "--new",
                              "--runs-dir", str(tmp_path / "dry"), "--dry-run")  # fmt: skip
    assert code == 1 and "process.user: cannot run on Kubernetes" in err, (out, err)


def test_missing_helm_and_kubeconfig_stop_the_run_before_the_tier(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real prerequisites check: this machine has neither helm nor a cluster."""
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))  # no helm there
    runs = tmp_path / "runs"
    camp = campaign_file(tmp_path)
    data = yaml.safe_load(camp.read_text())
    data["tiers"] = data["tiers"][1:]
    camp.write_text(yaml.safe_dump(data))
    code, out, err = tierlock("run", str(camp), "--model", "tierlock/diligent",
                              "--runs-dir", str(runs))  # fmt: skip
    assert code == 1, (out, err)
    line = err.strip().splitlines()[-1]
    assert "tool-restricted.yaml: tier tool-restricted cannot start on the k8s backend" in line
    assert "helm (>= 3.13) is not on PATH" in line and "no usable kubeconfig" in line
    kinds = [r.kind for r in records(runs)]
    assert "selftest" in kinds and "tier_started" not in kinds


def test_a_run_started_on_k8s_resumes_on_k8s_only(
    tmp_path: Path, k8s_standin: list[tuple[Path, dict[str, Any]]]
) -> None:
    runs = tmp_path / "runs"
    camp = campaign_file(tmp_path, policy=HERE / "named-user.policy.yaml")
    args = ("run", str(camp), "--model", "tierlock/diligent", "--runs-dir", str(runs))
    assert tierlock(*args)[0] == 1  # stopped at the refused tier, the run open
    code, out, err = tierlock(*args, "--backend", "docker")
    assert code == 1 and "backend changed (k8s → docker) since run" in err, (out, err)
    code, out, err = tierlock("resume", "--runs-dir", str(runs))
    assert code == 1 and "process.user: cannot run on Kubernetes" in err  # resumed on k8s


# --- the tier guard ------------------------------------------------------------------------------


def test_the_guard_refuses_a_k8s_sandbox_tierlock_did_not_translate(
    tmp_path: Path, k8s_standin: list[tuple[Path, dict[str, Any]]]
) -> None:
    """`inspect eval --sandbox k8s` with values of one's own: refused before the first step."""
    from inspect_ai import eval
    from inspect_ai._eval.loader import load_tasks
    from k8s_sandbox import K8sSandboxEnvironmentConfig

    (task,) = load_tasks([f"{PROBE}@k8s_probe"], {})
    values = _backend_k8s.translate_task("k8s_probe", task, "tool-restricted")[0].values
    own = tmp_path / "mine.values.yaml"
    own.write_text(yaml.safe_dump(values))
    (log,) = eval(task, model="tierlock/diligent", log_dir=str(tmp_path / "logs"),
                  sandbox=("k8s", K8sSandboxEnvironmentConfig(values=own)), display="none")  # fmt: skip
    assert log.samples is not None
    (sample,) = log.samples
    assert sample.error is not None
    assert "were not translated by this tierlock run" in sample.error.message
    assert log.eval.sandbox is not None and log.eval.sandbox.type == "k8s"
