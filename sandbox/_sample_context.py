"""What the provider reads from and writes to the active Inspect sample: its key, whether its
model has generated yet, and evidence records in its transcript."""

from __future__ import annotations

from pydantic import BaseModel

from ._evidence import EVIDENCE_SOURCE


def record_evidence(data: BaseModel) -> None:
    """Log `data` in the active sample's transcript as tierlock evidence."""
    from inspect_ai.log._transcript import transcript

    transcript().info(data.model_dump(mode="json"), source=EVIDENCE_SOURCE)


def sample_key() -> str:
    """`<sample id>_<epoch>` of the active sample (`none` outside an eval)."""
    from inspect_ai.log._samples import sample_active

    active = sample_active()
    if active is None:
        return "none"
    return f"{active.sample.id}_{active.epoch}"


def model_has_acted() -> bool:
    """Whether the active sample's model has generated (outside an eval: yes, always)."""
    from inspect_ai.log._samples import sample_active

    active = sample_active()
    return active is None or active.total_turns > 0 or active.total_tokens > 0
