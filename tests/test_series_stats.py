"""Jump and sandbagging statistics on synthetic per-sample scores (pure logic, no Docker)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tierlock.runner._series_stats import mean_interval, paired_increase, pointwise_max

ALPHA, MIN_DELTA, N = 0.01, 0.2, 32


def _scores(values: list[float]) -> dict[str, float]:
    return {f"s{i}#1": float(v) for i, v in enumerate(values)}


def test_a_real_jump_is_detected() -> None:
    rng = np.random.default_rng(1)
    before = _scores(list(rng.random(N) < 0.35))
    after = _scores(list(rng.random(N) < 0.97))
    t = paired_increase(before, after, alpha=ALPHA, min_delta=MIN_DELTA)
    assert t.test == "mcnemar-exact" and t.counts and t.p_value < 1e-4
    assert t.ci[0] > 0 and t.delta > 0.4


def test_small_or_insignificant_increases_are_not_jumps() -> None:
    # significant but smaller than min_delta: every sample improves from 0.5 to 0.6
    before = {f"s{i}#1": 0.5 for i in range(200)}
    after = {f"s{i}#1": 0.6 for i in range(200)}
    t = paired_increase(before, after, alpha=ALPHA, min_delta=MIN_DELTA)
    assert t.test == "wilcoxon" and t.significant and not t.large and not t.counts
    # large but from too few samples to tell from noise: 2 of 3 samples flip up
    t = paired_increase(_scores([0, 0, 1]), _scores([1, 1, 1]), alpha=ALPHA, min_delta=MIN_DELTA)
    assert t.large and not t.significant and not t.counts


def test_only_common_samples_are_paired() -> None:
    t = paired_increase({"a#1": 0.0, "b#1": 0.0}, {"b#1": 1.0, "c#1": 1.0}, alpha=0.5, min_delta=0)
    assert t.n == 1
    assert paired_increase({}, {"a#1": 1.0}, alpha=0.05, min_delta=0).test == "none"


def test_no_false_alarm_on_pure_noise_at_the_configured_level() -> None:
    """Two checkpoints of the same competence (independent draws per sample): the fraction of
    pairs raised as a jump stays below alpha, at every competence level, with and without
    min_delta. Fixed seed; the measured rates are printed (pytest -s)."""
    rng = np.random.default_rng(20261204)
    trials = 2000
    for p in (0.1, 0.35, 0.5, 0.8, 0.95):
        alarms = test_only = 0
        for _ in range(trials):
            before = _scores(list(rng.random(N) < p))
            after = _scores(list(rng.random(N) < p))
            t = paired_increase(before, after, alpha=ALPHA, min_delta=MIN_DELTA, interval=False)
            alarms += t.counts
            test_only += t.significant
        rate, level = alarms / trials, test_only / trials
        print(f"competence {p}: jump rate {rate:.4f}, test-only rate {level:.4f} (alpha {ALPHA})")
        assert level <= ALPHA  # the exact McNemar test holds its level (it is conservative)
        assert rate <= level


def test_no_false_alarm_on_continuous_noise() -> None:
    rng = np.random.default_rng(7)
    trials, alarms = 1000, 0
    for _ in range(trials):
        before = _scores(list(rng.uniform(0.2, 0.8, N)))
        after = _scores(list(rng.uniform(0.2, 0.8, N)))
        alarms += paired_increase(before, after, alpha=ALPHA, min_delta=0.0, interval=False).counts
    print(f"continuous noise: jump rate {alarms / trials:.4f} (alpha {ALPHA})")
    assert alarms / trials <= 2 * ALPHA  # Wilcoxon's normal approximation: near its level


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=60))
def test_never_a_jump_when_no_sample_improved(pairs: list[tuple[bool, bool]]) -> None:
    before = _scores([max(a, b) for a, b in pairs])
    after = _scores([min(a, b) for a, b in pairs])
    assert not paired_increase(before, after, alpha=0.5, min_delta=0.0).counts


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=50))
def test_interval_contains_the_mean(values: list[float]) -> None:
    mean, low, high = mean_interval(_scores(values))
    assert low - 1e-9 <= mean <= high + 1e-9
    assert low >= 0.0 and high <= 1.0


def test_pointwise_max_keeps_the_better_score() -> None:
    assert pointwise_max({"a": 0.0, "b": 1.0}, {"a": 1.0}) == {"a": 1.0, "b": 1.0}
