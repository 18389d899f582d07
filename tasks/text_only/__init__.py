"""Text-only tier: the model only writes text (no sandbox, no tools)."""

from .qualification import text_only_qualification
from .safety import text_only_safety

__all__ = ["text_only_qualification", "text_only_safety"]
