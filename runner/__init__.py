"""tierlock's runner: campaigns (the tier ladder), audit, gates, ledger and the CLI."""

from ._campaign import Campaign, CampaignError, Gate, TaskSpec, Threshold, TierSpec, load_campaign
from ._gate import Finding, SampleError, TaskResult, Verdict, evaluate_gate
from ._ledger import Ledger, Record, sha256_file
from ._run import (
    EXIT_AWAITING,
    EXIT_HALTED,
    EXIT_INCOMPLETE,
    EXIT_TOP,
    EXIT_USER,
    RunOutcome,
    TierContext,
    TierExecutor,
    approve,
    run_campaign,
    run_state,
)
from ._verify import VerifyResult

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
