"""Tool-restricted tier: bash and python in a container with no network."""

from .qualification import tool_restricted_qualification
from .safety import tool_restricted_safety
from .thorough import tool_restricted_thorough

__all__ = ["tool_restricted_qualification", "tool_restricted_safety", "tool_restricted_thorough"]
