"""tierlock's sandbox layer: policies, their lint, and the Docker sandbox that enforces them."""

from ._errors import Location, PolicyError, Problem, SandboxError, TierlockError
from ._policy import BASE_IMAGE, NETWORK_MODES, TIERS, Policy, Tier

__all__ = [
    "BASE_IMAGE",
    "NETWORK_MODES",
    "TIERS",
    "Location",
    "Policy",
    "PolicyError",
    "Problem",
    "SandboxError",
    "Tier",
    "TierlockError",
]
