"""tierlock's runner: campaigns (the tier ladder), gates, ledger, phases, series and the CLI.

The package also holds the audit (`tierlock.runner._audit`), a layer *below* the tasks: importing
the audit must not load the runner above it, so this face imports nothing when the package is
loaded. Its names are looked up on first use (PEP 562 `__getattr__`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._campaign import (
        Campaign,
        CampaignError,
        Gate,
        TaskSpec,
        Threshold,
        TierSpec,
    )
    from ._campaign_file import load_campaign
    from ._gate import Finding, SampleError, TaskResult, Verdict, evaluate_gate
    from ._ledger import Ledger, Record, sha256_file
    from ._run import approve, run_campaign
    from ._run_state import (
        EXIT_AWAITING,
        EXIT_HALTED,
        EXIT_INCOMPLETE,
        EXIT_TOP,
        EXIT_USER,
        RunOutcome,
        TierContext,
        TierExecutor,
        run_state,
    )
    from ._verify import VerifyResult

_MODULES = {
    "_campaign": (
        "Campaign",
        "CampaignError",
        "Gate",
        "TaskSpec",
        "Threshold",
        "TierSpec",
    ),
    "_campaign_file": ("load_campaign",),
    "_gate": ("Finding", "SampleError", "TaskResult", "Verdict", "evaluate_gate"),
    "_ledger": ("Ledger",),
    "_ledger_record": ("Record", "sha256_file"),
    "_run": ("approve", "run_campaign"),
    "_run_state": (
        "EXIT_AWAITING",
        "EXIT_HALTED",
        "EXIT_INCOMPLETE",
        "EXIT_TOP",
        "EXIT_USER",
        "RunOutcome",
        "TierContext",
        "TierExecutor",
        "run_state",
    ),
    "_verify": ("VerifyResult",),
}
"""Each module of the face → the public names it defines (the imports above, for type checkers)."""
_WHERE = {name: module for module, names in _MODULES.items() for name in names}

__all__ = [
    "EXIT_AWAITING",
    "EXIT_HALTED",
    "EXIT_INCOMPLETE",
    "EXIT_TOP",
    "EXIT_USER",
    "Campaign",
    "CampaignError",
    "Finding",
    "Gate",
    "Ledger",
    "Record",
    "RunOutcome",
    "SampleError",
    "TaskResult",
    "TaskSpec",
    "Threshold",
    "TierContext",
    "TierExecutor",
    "TierSpec",
    "Verdict",
    "VerifyResult",
    "approve",
    "evaluate_gate",
    "load_campaign",
    "run_campaign",
    "run_state",
    "sha256_file",
]


def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first use."""
    module = _WHERE.get(name)
    if module is None:
        # Not ours: `from tierlock.runner import _ledger` then imports the submodule.
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})
