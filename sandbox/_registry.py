"""Entry point of the `inspect_ai` group: importing this registers tierlock's providers with Inspect."""

# Each import registers through a decorator (@sandboxenv, @modelapi).
import tierlock.sandbox._provider
import tierlock.tasks.agents  # noqa: F401  (tierlock/diligent, tierlock/reckless, tierlock/weak)
