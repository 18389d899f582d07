"""tierlock's sandbox layer: policies, their lint, and the Docker sandbox that enforces them."""

from ._cleanup import CleanupReport, cleanup
from ._config import SandboxConfig, ServiceSpec
from ._errors import Location, PolicyError, Problem, SandboxError, TierlockError
from ._images import (
    BASE_RECIPE,
    ImageRecipe,
    build_image,
    ensure_image,
    register_recipe,
    resolve_image,
)
from ._ladder import check_ladder, diff_policies
from ._lint import RULES, has_errors, lint_policy, load_runnable_policy
from ._loader import LoadedPolicy, load_policy, load_policy_file
from ._network import SampleNetwork, create_sample_network
from ._network_describe import describe_network
from ._policy import BASE_IMAGE, NETWORK_MODES, TIERS, Policy, Tier
from ._signals import install_termination_handler, raise_if_terminated, received_signal
from ._translate import container_settings, docker_settings

__all__ = [
    "BASE_IMAGE",
    "BASE_RECIPE",
    "NETWORK_MODES",
    "RULES",
    "TIERS",
    "CleanupReport",
    "ImageRecipe",
    "LoadedPolicy",
    "Location",
    "Policy",
    "PolicyError",
    "Problem",
    "SampleNetwork",
    "SandboxConfig",
    "SandboxError",
    "ServiceSpec",
    "Tier",
    "TierlockError",
    "build_image",
    "check_ladder",
    "cleanup",
    "container_settings",
    "create_sample_network",
    "describe_network",
    "diff_policies",
    "docker_settings",
    "ensure_image",
    "has_errors",
    "install_termination_handler",
    "lint_policy",
    "load_policy",
    "load_policy_file",
    "load_runnable_policy",
    "raise_if_terminated",
    "received_signal",
    "register_recipe",
    "resolve_image",
]
