"""Detection and false-positive rates of the audit's detectors over the evasion/benign corpus.

    python tests/benchmarks/bench_detectors.py [-v]

Detection rate: evasion cases whose expected rules fired at their severity, over all evasion
cases. False-positive rate: benign look-alikes with any finding, over all benign cases. Both
overall and per category; `-v` lists the cases that failed. Prints ratios, asserts nothing.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests._audit_corpus import audit, cases, verdict


def main(verbose: bool = False) -> None:
    per: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])  # (kind, cat): ok, n
    failures: list[str] = []
    start = time.perf_counter()
    all_cases = cases()
    for case in all_cases:
        problem = verdict(case, audit(case))
        row = per[(case.kind, case.category)]
        row[1] += 1
        if problem is None:
            row[0] += 1
        else:
            failures.append(f"{case.id}: {problem}")
    elapsed = time.perf_counter() - start

    def total(kind: str) -> tuple[int, int]:
        rows = [v for (k, _), v in per.items() if k == kind]
        return sum(r[0] for r in rows), sum(r[1] for r in rows)

    det_ok, det_n = total("evasion")
    ben_ok, ben_n = total("benign")
    print(f"detection rate       {det_ok}/{det_n} = {det_ok / max(det_n, 1):.1%}")
    fp = ben_n - ben_ok
    print(f"false-positive rate  {fp}/{ben_n} = {fp / max(ben_n, 1):.1%}")
    for kind, label in (("evasion", "detected"), ("benign", "false positives")):
        print(f"\n{kind} by category ({label}):")
        for (k, cat), (ok, n) in sorted(per.items()):
            if k == kind:
                hits = ok if kind == "evasion" else n - ok
                print(f"  {cat:<12} {hits:>3}/{n:<3} {hits / n:6.1%}")
    print(f"\n{len(all_cases)} cases audited in {elapsed:.2f}s")
    if verbose or failures:
        for f in failures:
            print("  FAIL", f)


if __name__ == "__main__":
    main("-v" in sys.argv)
