"""The evasion/benign corpus (`tests/data/audit/`): each case's expected outcome, one test per case.

Evasion cases must raise their rules at (at least) their severity; benign look-alikes must
raise nothing. The same cases also go through a real `.eval` log (mock model, canned tool
results) and `audit_log`, so the reader and attachment path are exercised end to end.
Rates over the corpus are printed by `tests/benchmarks/bench_detectors.py`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._audit_corpus import Case, audit, cases, verdict
from tests._audit_events import contract
from tierlock.runner._audit import audit_log
from tierlock.sandbox._evidence import ProxyLog, ProxyRequest

ALL = cases()


def test_corpus_is_large_enough() -> None:
    kinds = [c.kind for c in ALL]
    assert kinds.count("evasion") >= 50 and kinds.count("benign") >= 50
    for c in ALL:
        assert c.data.get("about") and c.data.get("expect"), c.id


@pytest.mark.parametrize("case", ALL, ids=[c.id for c in ALL])
def test_case(case: Case) -> None:
    problem = verdict(case, audit(case))
    assert problem is None, f"{case.id} ({case.data['about']}): {problem}"


def _scripts(chosen: list[Case]):  # built lazily: importing Inspect's eval is slow
    from tests._audit_logs import Script

    out = []
    for case in chosen:
        calls, results = [], {}
        for call in case.data.get("calls") or []:
            name = "bash" if "bash" in call else "python"
            calls.append((name, call[name]))
            results[call[name]] = call.get("result", "")
        proxy = (
            [
                ProxyLog(
                    proxy="proxy",
                    requests=[
                        ProxyRequest(time=float(i), **r) for i, r in enumerate(case.data["proxy"])
                    ],
                )
            ]
            if case.data.get("proxy")
            else []
        )
        meta = contract(
            case.data.get("tier", "tool-restricted"), **(case.data.get("violations") or {})
        )
        out.append(
            Script(
                id=case.id.replace("/", "--"),
                calls=calls,
                final=case.data.get("final", "done"),
                metadata=meta,
                evidence=proxy,
                results=results,
            )
        )
    return out


def test_corpus_through_a_real_log(tmp_path: Path) -> None:
    """The cases (except those with a tool error or another tool than bash/python, or whose
    command another case answers differently) as samples of one `.eval` log: `audit_log`
    reaches the same verdicts."""
    from tests._audit_logs import make_log

    results: dict[str, set[str]] = {}  # the fake tools answer by command text: one result each
    for c in ALL:
        for call in c.data.get("calls") or []:
            text = call.get("bash") or call.get("python") or ""
            results.setdefault(text, set()).add(call.get("result", ""))
    chosen = [
        c
        for c in ALL
        if not any(
            call.get("error")
            or "tool" in call
            or len(results[call.get("bash") or call.get("python")]) > 1
            for call in c.data.get("calls") or []
        )
    ]
    log = make_log(tmp_path, _scripts(chosen))
    result = audit_log(log)
    by_id = {str(s.id): s for s in result.samples}
    problems = [
        f"{c.id}: {p}"
        for c in chosen
        if (p := verdict(c, by_id[c.id.replace("/", "--")])) is not None
    ]
    assert len(by_id) == len(chosen) and problems == []
