"""Entry point of the `inspect_ai` group: importing this registers tierlock's providers with Inspect."""

# Each import registers through a decorator (@sandboxenv, @modelapi).
import sandbox._provider  # noqa: F401  (sandbox provider "tierlock")
import tasks.agents  # noqa: F401  (tierlock/diligent, tierlock/reckless, tierlock/weak)
