"""Runner overhead: the share of `tierlock run`'s wall time spent outside Inspect's evals.

Runs the default ladder (`tierlock run` on runner/campaigns/default.yaml with the offline default
model, into a temporary runs directory) in a child process that wraps, without changing them:
`inspect_ai.eval_set` (the evals), the executor's `selftest` (the escape battery before a
sandboxed tier), `audit_findings` (the post-run audit of each log), `check_model` and the
campaign pre-flight `InspectExecutor.check` (loads every task); Python start and imports and
the exit are timed too. Everything else — the ledger, pinning and log hashing, evidence checks,
gating, cleanup sweeps — is "other". The ledger's own record times (tier_started, log_written, audit_result, verdict...) are
printed per tier beside it.

Run: `python tests/benchmarks/bench_runner_overhead.py [--rounds 1] [--campaign FILE]
[--model tierlock/diligent] [--tree LABEL=DIR ...]`. Prints the split and the share outside the
evals (aim <= 10%), with the load average around each run. Nothing is asserted.

`--tree before=/tmp/a --tree after=/tmp/b` compares copies of tierlock side by side: each DIR
holds a `tierlock/` folder (sandbox, runner, tasks, policies) put first on the child's
PYTHONPATH; every round runs each tree once, the order rotated, and the medians are printed
next to each other.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# The child: time-stamped wrappers around the calls named above, then tierlock's own entry point.
CHILD = r"""
import atexit, json, sys, time
T0, C0 = time.perf_counter(), time.process_time()
REPORT = sys.argv[1]
spans = []

def timed(kind, fn):
    def wrapper(*args, **kwargs):
        start, cpu = time.perf_counter(), time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            spans.append([kind, start - T0, time.perf_counter() - T0, cpu - C0,
                          time.process_time() - C0])
    return wrapper

@atexit.register
def report():
    with open(REPORT, "w") as f:
        end = time.perf_counter() - T0
        # thread joins and other atexit handlers
        spans.append(["exit", main_end, end, main_cpu, time.process_time() - C0])
        json.dump({"spans": spans, "end": end, "missing": missing, "tree": tree}, f)

missing = []
main_end = main_cpu = 0.0
tree = "?"
import inspect_ai
inspect_ai.eval_set = timed("eval", inspect_ai.eval_set)
import importlib
# (span, module, attribute path): wrapped where it is looked up at call time; a name another
# change moved is reported as not wrapped (its time then counts as "other")
for kind, module, path in (
    ("selftest", "tierlock.runner._inspect", "InspectExecutor.selftest"),
    ("audit", "tierlock.runner._inspect", "audit_findings"),
    ("model-check", "tierlock.runner._cli_run", "check_model"),
    ("campaign-check", "tierlock.runner._inspect", "InspectExecutor.check"),
):
    try:
        owner = importlib.import_module(module)
        *parents, name = path.split(".")
        for part in parents:
            owner = getattr(owner, part)
        setattr(owner, name, timed(kind, getattr(owner, name)))
    except (ImportError, AttributeError):
        missing.append(f"{module}.{path}")
from tierlock.runner.cli import main
spans.append(["imports", 0.0, time.perf_counter() - T0, 0.0, time.process_time() - C0])
import tierlock.runner as _tr
tree = list(_tr.__path__)[0]
sys.argv = ["tierlock", *sys.argv[2:]]
try:
    main()
finally:
    main_end, main_cpu = time.perf_counter() - T0, time.process_time() - C0
"""


def ledger_timeline(ledger: Path) -> list[tuple[float, str, str]]:
    """(seconds since the first record, kind, tier) for each record of the ledger."""
    from datetime import datetime

    db = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT time, kind, tier FROM records ORDER BY seq").fetchall()
    finally:
        db.close()
    if not rows:
        return []
    t0 = datetime.fromisoformat(rows[0][0])
    return [((datetime.fromisoformat(t) - t0).total_seconds(), k, tier or "") for t, k, tier in rows]


def _children_cpu() -> float:
    """User + system CPU seconds of this process's finished children."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def one_run(args: argparse.Namespace, tree: str | None = None) -> dict:
    with tempfile.TemporaryDirectory(prefix="tierlock-overhead-") as tmp:
        spans_file = Path(tmp) / "spans.json"
        runs = Path(tmp) / "runs"
        argv = [sys.executable, "-c", CHILD, str(spans_file), "run", "-q", "--runs-dir", str(runs),
                "--model", args.model]
        if args.campaign:
            argv.insert(5, args.campaign)
        load_before = os.getloadavg()[0]
        env = dict(os.environ)
        if tree is not None:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [tree, env.get("PYTHONPATH")]))
        start, cpu0 = time.perf_counter(), _children_cpu()
        p = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=env)
        total, cpu_total = time.perf_counter() - start, _children_cpu() - cpu0
        if not spans_file.exists():
            raise SystemExit(f"tierlock run exited {p.returncode} without a report:\n{p.stderr[-2000:]}")
        data = json.loads(spans_file.read_text())
        timeline = ledger_timeline(runs / "ledger.sqlite") if (runs / "ledger.sqlite").exists() else []
    by_kind: dict[str, float] = {"process": total - data["end"]}  # interpreter start and exit
    cpu_eval = 0.0
    for kind, s, e, cs, ce in data["spans"]:
        by_kind[kind] = by_kind.get(kind, 0.0) + (e - s)
        cpu_eval += (ce - cs) if kind == "eval" else 0.0
    return {"total": total, "exit": p.returncode, "last_line": (p.stdout.strip().splitlines() or [""])[-1],
            "by_kind": by_kind, "evals": sum(s[0] == "eval" for s in data["spans"]),
            "cpu": (cpu_total, cpu_eval),
            "timeline": timeline, "missing": data["missing"], "spans": data["spans"],
            "load": (load_before, os.getloadavg()[0]), "tree": data.get("tree", "?")}


def print_run(i: int, r: dict) -> None:
    total, kinds = r["total"], r["by_kind"]
    evals = kinds.get("eval", 0.0)
    named = NAMED
    other = total - evals - sum(kinds.get(k, 0.0) for k in named)
    print(f"run {i + 1}: exit {r['exit']} ({r['last_line'][:100]})  "
          f"load {r['load'][0]:.1f}->{r['load'][1]:.1f}  tierlock.runner from {r['tree']}")
    print(f"  total wall {total:.1f}s; Inspect evals {evals:.1f}s ({r['evals']} eval_set calls)")
    print(f"  outside the evals: {total - evals:.1f}s = {(total - evals) / total:.1%}: "
          + ", ".join(f"{k} {kinds.get(k, 0.0):.1f}s ({kinds.get(k, 0.0) / total:.1%})"
                      for k in named)
          + f", other {other:.1f}s ({other / total:.1%}: ledger, pinning, gating, evidence, "
          "cleanup sweeps); process = interpreter start and finalization")
    cpu_total, cpu_eval = r["cpu"]
    print(f"  CPU of the tierlock process: {cpu_total:.1f}s, in the evals {cpu_eval:.1f}s; outside "
          f"{cpu_total - cpu_eval:.1f}s = {(cpu_total - cpu_eval) / cpu_total:.1%} (steadier "
          "than wall time on a loaded host)")
    if r["missing"]:
        print(f"  not wrapped (renamed?): {', '.join(r['missing'])}; counted in 'other'")


def print_spans(spans: list[list]) -> None:
    print("  wrapped calls (seconds after the child started; gaps are 'other'):")
    last = 0.0
    for kind, s, e, *_ in sorted(spans, key=lambda x: x[1]):
        print(f"    {s:7.2f}-{e:7.2f}  {kind:<9} {e - s:6.2f}s   (gap before {s - last:5.2f}s)")
        last = max(last, e)


def print_timeline(timeline: list[tuple[float, str, str]]) -> None:
    print("  ledger records (seconds after run_started):")
    for t, kind, tier in timeline:
        print(f"    {t:7.2f}  {kind:<14} {tier}")


NAMED = ("process", "imports", "model-check", "campaign-check", "selftest", "audit", "exit")


def compare(args: argparse.Namespace) -> None:
    """Each tree once per round, the order rotated; medians side by side."""
    trees = [t.split("=", 1) for t in args.tree]
    if any(len(t) != 2 or not Path(t[1], "tierlock").is_dir() for t in trees):
        raise SystemExit("--tree LABEL=DIR, DIR holding a tierlock/ folder")
    runs: dict[str, list[dict]] = {label: [] for label, _ in trees}
    for i in range(args.rounds):
        order = trees[i % len(trees):] + trees[: i % len(trees)]
        for label, path in order:
            r = one_run(args, str(Path(path).resolve()))
            print(f"[{label}] ", end="")
            print_run(i, r)
            runs[label].append(r)

    def med(rs: list[dict], kind: str) -> float:
        if kind == "total":
            return statistics.median(r["total"] for r in rs)
        if kind == "outside":
            return statistics.median(r["total"] - r["by_kind"].get("eval", 0.0) for r in rs)
        if kind == "other":
            return statistics.median(
                r["total"] - sum(r["by_kind"].get(k, 0.0) for k in ("eval", *NAMED)) for r in rs
            )
        return statistics.median(r["by_kind"].get(kind, 0.0) for r in rs)

    labels = list(runs)
    print(f"\nmedians of {args.rounds} round(s), seconds:")
    print(f"  {'':<16}" + "".join(f"{label:>12}" for label in labels))
    for kind in ("total", "eval", "outside", *NAMED, "other"):
        print(f"  {kind:<16}" + "".join(f"{med(runs[label], kind):12.2f}" for label in labels))
    for row in ("cpu total", "cpu eval", "cpu outside"):
        pick = {"cpu total": lambda c: c[0], "cpu eval": lambda c: c[1],
                "cpu outside": lambda c: c[0] - c[1]}[row]
        print(f"  {row:<16}" + "".join(
            f"{statistics.median(pick(r['cpu']) for r in runs[label]):12.2f}" for label in labels))
    for label in labels:
        cpu = [(r["cpu"][0] - r["cpu"][1]) / r["cpu"][0] for r in runs[label]]
        print(f"  CPU share outside the evals [{label}]: median {statistics.median(cpu):.1%} "
              f"(range {min(cpu):.1%}-{max(cpu):.1%})")
    for label in labels:
        shares = [(r["total"] - r["by_kind"].get("eval", 0.0)) / r["total"] for r in runs[label]]
        print(f"  share outside the evals [{label}]: median {statistics.median(shares):.1%} "
              f"(range {min(shares):.1%}-{max(shares):.1%}; aim <= 10%)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--campaign", help="campaign file (default: the shipped default ladder)")
    ap.add_argument("--model", default="tierlock/diligent")
    ap.add_argument("--timeline", action="store_true", help="print the ledger's record times")
    ap.add_argument("--tree", action="append", default=[], metavar="LABEL=DIR",
                    help="compare copies of tierlock side by side (repeat; see the docstring)")
    args = ap.parse_args()
    if args.tree:
        compare(args)
        return
    shares = []
    for i in range(args.rounds):
        r = one_run(args)
        print_run(i, r)
        if args.timeline or i == 0:
            print_spans(r["spans"])
            print_timeline(r["timeline"])
        shares.append((r["total"] - r["by_kind"].get("eval", 0.0)) / r["total"])
    if args.rounds > 1:
        print(f"share outside the evals: median {statistics.median(shares):.1%} "
              f"(range {min(shares):.1%}-{max(shares):.1%}; aim <= 10%)")


if __name__ == "__main__":
    main()
