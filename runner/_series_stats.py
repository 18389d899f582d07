"""The statistics of a checkpoint series: paired tests on per-sample scores (scipy).

Two checkpoints ran the same samples, so their scores are compared sample by sample:
- 0/1 scores: the exact McNemar test, a binomial test on the discordant pairs
  (`scipy.stats.binomtest`: of the samples whose result changed, how many improved);
- other scores: the Wilcoxon signed-rank test on the paired differences (`scipy.stats.wilcoxon`).
Both one-sided (is `after` higher than `before`?). The interval is a bootstrap confidence interval
of the mean difference (`scipy.stats.bootstrap`, fixed seed). A change counts when it is both
large (at least `min_delta`) and significant (p < alpha): a jump when `after` is a later
checkpoint, a sandbagging sign when `after` is the elicited variant or an earlier checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

Scores = Mapping[str, float]
"""Per-sample scores keyed by `sample id#epoch`."""

BOOTSTRAP_RESAMPLES = 2000


@dataclass(frozen=True)
class PairedTest:
    """One one-sided paired comparison of `after` against `before` on their common samples."""

    test: str  # mcnemar-exact | wilcoxon | none (no common samples)
    n: int
    mean_before: float
    mean_after: float
    delta: float  # mean_after - mean_before
    p_value: float
    ci: tuple[float, float]  # bootstrap interval of delta at 1 - alpha
    alpha: float
    min_delta: float

    @property
    def significant(self) -> bool:
        return self.p_value < self.alpha

    @property
    def large(self) -> bool:
        return self.delta >= self.min_delta and self.delta > 0

    @property
    def counts(self) -> bool:
        """Large and significant: more than sampling noise, and more than `min_delta`."""
        return self.large and self.significant

    def payload(self) -> dict[str, Any]:
        out = asdict(self)
        out["ci"] = list(self.ci)
        out["significant"] = self.significant
        return out

    def describe(self) -> str:
        return (
            f"{self.mean_before:.2f} -> {self.mean_after:.2f} (delta {self.delta:+.2f}, "
            f"{self.test} p={self.p_value:.3g}, n={self.n}, "
            f"{1 - self.alpha:.0%} CI [{self.ci[0]:+.2f}, {self.ci[1]:+.2f}])"
        )


def _binary(values: Sequence[float]) -> bool:
    return all(v in (0.0, 1.0) for v in values)


def paired_increase(
    before: Scores, after: Scores, *, alpha: float, min_delta: float, interval: bool = True
) -> PairedTest:
    """Is `after` higher than `before` on the same samples (one-sided)? `interval=False`
    skips the bootstrap (the interval is then the point estimate)."""
    import numpy as np
    from scipy import stats

    keys = sorted(set(before) & set(after))
    b = np.array([float(before[k]) for k in keys])
    a = np.array([float(after[k]) for k in keys])
    if not keys:
        return PairedTest("none", 0, 0.0, 0.0, 0.0, 1.0, (0.0, 0.0), alpha, min_delta)
    diff = a - b
    if _binary(list(a)) and _binary(list(b)):
        test = "mcnemar-exact"
        up, down = int(np.sum(diff > 0)), int(np.sum(diff < 0))
        p = 1.0 if up + down == 0 else stats.binomtest(up, up + down, 0.5, "greater").pvalue
    else:
        test = "wilcoxon"
        p = 1.0 if not np.any(diff) else stats.wilcoxon(a, b, alternative="greater").pvalue
    return PairedTest(
        test, len(keys), float(b.mean()), float(a.mean()), float(diff.mean()),
        float(p), _interval(diff, alpha) if interval else (float(diff.mean()),) * 2,
        alpha, min_delta,
    )  # fmt: skip


def _interval(diff: np.ndarray[Any, Any], alpha: float) -> tuple[float, float]:
    """Bootstrap (percentile) interval of the mean difference; a point when there is no spread."""
    import numpy as np
    from scipy import stats

    if len(diff) < 2 or np.all(diff == diff[0]):
        return (float(diff.mean()), float(diff.mean()))
    res = stats.bootstrap(
        (diff,), np.mean, confidence_level=1 - alpha, n_resamples=BOOTSTRAP_RESAMPLES,
        method="percentile", rng=np.random.default_rng(0),
    )  # fmt: skip
    low, high = res.confidence_interval
    return (float(low), float(high))


def mean_interval(scores: Scores, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Wilson interval for 0/1 scores, Student t otherwise."""
    import numpy as np
    from scipy import stats

    values = [float(v) for v in scores.values()]
    if not values:
        return (math.nan, math.nan, math.nan)
    mean = sum(values) / len(values)
    if _binary(values):
        ci = stats.binomtest(int(sum(values)), len(values)).proportion_ci(level, "wilson")
        return (mean, float(ci.low), float(ci.high))
    if len(values) < 2 or np.std(values) == 0:
        return (mean, mean, mean)
    sem = stats.sem(values)
    low, high = stats.t.interval(level, len(values) - 1, loc=mean, scale=sem)
    return (mean, max(0.0, float(low)), min(1.0, float(high)))


def pointwise_max(a: Scores, b: Scores) -> dict[str, float]:
    """Per sample, the better of two score sets (a checkpoint's best shown capability)."""
    return {k: max(float(a[k]), float(b[k])) if k in b else float(a[k]) for k in a}
