"""The endpoint watch's give-up clock, and the model settings a resumed run must keep.

Unit tests on a fake clock: the bound counts from the first failure after the endpoint's last
answer — a tier whose first model call comes late (image builds, sandbox set-up, selftest) is
not given up on at its first retry — and an answer resets it.
"""

from __future__ import annotations

from typing import Any

from tierlock.runner._endpoint import EndpointWatch
from tierlock.runner._pinning import settings_changes


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _watch(clock: Clock, give_up: float = 60.0) -> tuple[EndpointWatch, list[str]]:
    said: list[str] = []
    return EndpointWatch("openai/m", "http://127.0.0.1:9/v1", give_up, said.append,
                         clock=clock), said  # fmt: skip


def test_a_late_first_failure_is_not_given_up_on_at_once() -> None:
    clock = Clock()
    watch, _ = _watch(clock)
    clock.now += 600  # ten minutes of sandbox set-up before the first model call
    watch.retried(500, None)
    assert not watch.failed
    clock.now += 59
    watch.retried(503, None)
    assert not watch.failed
    clock.now += 2
    watch.retried(500, None)
    assert watch.unavailable is not None and "kept failing for 61s" in watch.unavailable
    assert "3 retries, last status 500" in watch.unavailable


def test_an_answer_resets_the_clock() -> None:
    clock = Clock()
    watch, said = _watch(clock)
    watch.retried(500, None)
    clock.now += 50
    watch.answered()
    clock.now += 20
    watch.retried(429, None)  # 70 s after the first failure, but 0 s into this streak
    clock.now += 30
    watch.retried(429, None)
    assert not watch.failed
    assert said and "failing for" in said[0]


def _info(args: dict[str, Any], gen: dict[str, Any]) -> dict[str, Any]:
    return {"model_args": args, "generate_config": gen}


def test_resuming_with_other_model_settings_is_refused() -> None:
    recorded = _info({"responses_api": False}, {"temperature": 0.0, "max_retries": 6})
    assert settings_changes(recorded, _info({"responses_api": False}, {"temperature": 0.0})) == []
    # operational settings may change on resume (a longer timeout after an outage)
    assert settings_changes(recorded, _info({"responses_api": False},
                                            {"temperature": 0.0, "max_retries": 9,
                                             "timeout": 900})) == []  # fmt: skip
    changed = settings_changes(recorded, _info({"responses_api": True}, {"temperature": 0.7}))
    assert changed == [
        "model argument responses_api changed (False → True)",
        "generation setting temperature changed (0.0 → 0.7)",
    ]
    assert settings_changes(recorded, _info({}, {"temperature": 0.0})) == [
        "model argument responses_api changed (False → unset)"
    ]
    # a run recorded before settings were recorded is not compared
    assert settings_changes({}, _info({"x": 1}, {})) == []
