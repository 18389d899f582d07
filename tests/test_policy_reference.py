"""The generated policy field reference (issue 20 item 8): complete, and the same as the
checked-in `policies/REFERENCE.md`."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tierlock.sandbox import Policy
from tierlock.sandbox._reference import policy_reference, undescribed_fields

REPO = Path(__file__).resolve().parent.parent
CHECKED_IN = REPO / "policies" / "REFERENCE.md"


def test_every_field_is_described() -> None:
    assert undescribed_fields() == []


def test_every_field_of_the_model_is_in_the_reference() -> None:
    text = policy_reference()
    for name in Policy.model_fields:
        assert f"| `{name}` |" in text
    for key in ("network.allow_subdomains", "filesystem.writable[].size", "limits.sample_time",
                "process.namespaces.userns", "unsafe.reason", "process.background"):  # fmt: skip
        assert f"| `{key}` |" in text, key
    # defaults are shown as a policy file would write them
    assert "| `limits.memory` | size or null | 512m |" in text
    assert "| `limits.command_timeout` | duration | 1m |" in text


def test_checked_in_reference_matches_the_model() -> None:
    out = subprocess.run(["tierlock", "policy", "reference"], capture_output=True, text=True,
                         timeout=120, check=True).stdout  # fmt: skip
    assert out == policy_reference()
    assert CHECKED_IN.read_text() == out, (
        "policies/REFERENCE.md is out of date: run `tierlock policy reference > "
        "policies/REFERENCE.md`"
    )
