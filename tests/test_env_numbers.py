"""The `TIERLOCK_*` numbers from the environment: unset is the default, a bad value is one line
naming the variable (never a traceback, never a silent default)."""

from __future__ import annotations

import pytest

from tierlock.sandbox import SandboxError
from tierlock.sandbox._docker_deadline import DEFAULT_TIMEOUT, TIMEOUT_ENV, docker_timeout
from tierlock.sandbox._uids import DEFAULT_SLOTS, SLOTS_ENV, slots
from tierlock.sandbox._warm_pool_demand import SIZE_ENV, pool_size

CASES = [
    (SIZE_ENV, pool_size, 0, {"0": 0, " 8 ": 8, "256": 256}, ["-1", "257", "2.5", "x", "1e3"]),
    (SLOTS_ENV, slots, DEFAULT_SLOTS, {"1": 1, "65536": 65536}, ["0", "65537", "many"]),
    (TIMEOUT_ENV, docker_timeout, DEFAULT_TIMEOUT, {"0.5": 0.5, "86400": 86400.0},
     ["0", "-3", "86401", "nan", "inf", "soon"]),
]


@pytest.mark.parametrize(("name", "read", "default", "good", "bad"), CASES,
                         ids=[c[0] for c in CASES])
def test_env_numbers(monkeypatch: pytest.MonkeyPatch, name: str, read, default, good, bad) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv(name, raising=False)
    assert read() == default
    monkeypatch.setenv(name, "")
    assert read() == default
    for raw, want in good.items():
        monkeypatch.setenv(name, raw)
        assert read() == want
    for raw in bad:
        monkeypatch.setenv(name, raw)
        with pytest.raises(SandboxError) as e:
            read()
        line = str(e.value)
        assert "\n" not in line and f"${name}" in line and repr(raw) in line, line
