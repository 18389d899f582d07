"""Checking a `--model` name before anything runs: a typo is a user error, not a verdict.

Inspect resolves `provider/name` only when an eval starts, so an unknown provider used to be
recorded as a harness error (an incomplete tier). Here the provider is looked up in Inspect's
registry (entry points included) first; tierlock's own offline agents are also constructed,
which checks the agent name. Other providers are not constructed (that may need a key or
start a server): their model names are the provider's to check.
"""

from __future__ import annotations

from tierlock.sandbox import TierlockError

OWN_PROVIDER = "tierlock"


def known_providers() -> list[str]:
    """The model API names Inspect knows (its own and those registered by entry points)."""
    import inspect_ai.model  # noqa: F401  (registers Inspect's providers)
    from inspect_ai._util.entrypoints import ensure_entry_points
    from inspect_ai._util.registry import registry_find, registry_info, registry_unqualified_name

    ensure_entry_points()
    found = registry_find(lambda info: info.type == "modelapi")
    return sorted({registry_unqualified_name(registry_info(f)) for f in found})


def check_model(model: str) -> None:
    """Raise `TierlockError` (one line) unless `model` names a known provider (and, for
    tierlock's scripted agents, a known agent)."""
    provider, sep, name = model.partition("/")
    if not sep or not provider or not name:
        raise TierlockError(
            f"--model {model!r}: write provider/name, e.g. tierlock/diligent or openai/gpt-4o"
        )
    if provider == OWN_PROVIDER:  # ours is always registered: no need to list every provider
        from inspect_ai.model import get_model

        get_model(model)  # an unknown scripted agent raises TierlockError
        return
    providers = known_providers()  # slow (imports every provider's registration): others only
    if provider not in providers:
        raise TierlockError(
            f"--model {model}: unknown model provider {provider!r} "
            f"(known: {', '.join(providers)})"
        )
