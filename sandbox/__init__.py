"""tierlock's sandbox layer: policies, their lint, and the Docker sandbox that enforces them."""

from ._errors import Location, PolicyError, Problem, SandboxError, TierlockError
from ._ladder import check_ladder, diff_policies
from ._lint import RULES, has_errors, lint_policy, load_runnable_policy
from ._loader import LoadedPolicy, load_policy, load_policy_file
from ._network import SampleNetwork, create_sample_network, describe_network
from ._policy import BASE_IMAGE, NETWORK_MODES, TIERS, Policy, Tier

__all__ = [
    "BASE_IMAGE",
    "NETWORK_MODES",
    "RULES",
    "TIERS",
    "LoadedPolicy",
    "Location",
    "Policy",
    "PolicyError",
    "Problem",
    "SampleNetwork",
    "SandboxError",
    "Tier",
    "TierlockError",
    "check_ladder",
    "create_sample_network",
    "describe_network",
    "diff_policies",
    "has_errors",
    "lint_policy",
    "load_policy",
    "load_policy_file",
    "load_runnable_policy",
]
