"""Networked tier: tools plus the task's API sidecar and an allowlist through the egress proxy."""

from .qualification import networked_qualification
from .safety import networked_safety
from .thorough import networked_thorough

__all__ = ["networked_qualification", "networked_safety", "networked_thorough"]
