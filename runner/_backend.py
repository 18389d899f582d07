"""Where a run's sandboxed tiers run (its backend), and what its gate does with the evidence that
backend cannot collect.

`docker` (the default) is tierlock's own Inspect provider on the local Docker engine: every sample
carries tierlock's sandbox evidence (conformance, container evidence, proxy log, tripwires).
`k8s` runs them with Inspect's `k8s` sandbox (inspect-k8s-sandbox) and values translated from the
tier's policy (`_backend_k8s.py`): those records are absent by design. The campaign's
`absent_evidence` decides whether a tier may still be clean (`accept`) or not (`block`, the
default). The command line's `--backend` wins over the campaign's `backend:`.

The choice is a run setting: it is recorded in the run's `run_started` record (`record`) and a
resumed run must use the same backend (`_pinning.settings_changes`); the gate reads it back from
that record (`recorded_backend`), never from memory. Runs recorded before backends existed ran on
docker with nothing to accept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from ._campaign import Campaign

BackendName = Literal["docker", "k8s"]
BACKENDS: tuple[BackendName, ...] = get_args(BackendName)
AbsentEvidence = Literal["block", "accept"]

K8S_SANDBOX = "k8s"
"""Inspect's sandbox type of inspect-k8s-sandbox (what a k8s run's logs declare)."""

RECORD_KEY = "backend"
"""Key of the backend in a run's `run_started` payload (and in `run_info`)."""


@dataclass(frozen=True)
class RunBackend:
    """A run's backend and its campaign's choice about the evidence that backend lacks."""

    name: BackendName = "docker"
    absent_evidence: AbsentEvidence = "block"

    @property
    def sandbox_type(self) -> str | None:
        """The Inspect sandbox type the backend puts sandboxed tasks in (None: the task's own,
        tierlock's provider)."""
        return K8S_SANDBOX if self.name == "k8s" else None

    @property
    def accepts_absent(self) -> bool:
        """Whether a tier may be clean without the evidence this backend cannot collect (never
        on docker: its samples must carry all of it)."""
        return self.name != "docker" and self.absent_evidence == "accept"

    def record(self) -> dict[str, Any]:
        """What the run's `run_started` record says about it."""
        return {"name": self.name, "absent_evidence": self.absent_evidence}

    def describe(self) -> str:
        if self.name == "docker":
            return "docker"
        return f"{self.name} (absent_evidence: {self.absent_evidence})"


def resolve_backend(campaign: Campaign, cli: str | None = None) -> RunBackend:
    """The backend a run of `campaign` uses: `--backend` when given, else the campaign's."""
    name = cli or campaign.backend
    if name not in BACKENDS:  # click's Choice refuses it first; a defensive one-liner
        raise ValueError(f"unknown backend {name!r} (choose from {', '.join(BACKENDS)})")
    chosen: BackendName = "k8s" if name == "k8s" else "docker"
    return RunBackend(chosen, campaign.absent_evidence)


def recorded_backend(payload: dict[str, Any] | None) -> RunBackend:
    """The backend a `run_started` payload records (docker, blocking, when it records none:
    runs started before backends existed, or started without the CLI). Anything unreadable
    reads as docker with `block`: nothing absent is ever accepted on a guess."""
    data = (payload or {}).get(RECORD_KEY)
    if not isinstance(data, dict):
        return RunBackend()
    name = data.get("name")
    choice = data.get("absent_evidence")
    if name not in BACKENDS:
        return RunBackend()
    return RunBackend(
        "k8s" if name == "k8s" else "docker",
        "accept" if choice == "accept" else "block",
    )


def backend_change(recorded: dict[str, Any], run_info: dict[str, Any] | None) -> str | None:
    """How the backend in `run_info` differs from the one a run was started with (None: same).
    A run recorded without one ran on docker."""
    if run_info is None or RECORD_KEY not in run_info:
        return None
    was, now = recorded_backend(recorded), recorded_backend(run_info)
    if was == now:
        return None
    if was.name != now.name:
        return f"backend changed ({was.name} → {now.name})"
    return f"absent_evidence changed ({was.absent_evidence} → {now.absent_evidence})"
