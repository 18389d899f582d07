"""Inspect's entry point (`[project.entry-points.inspect_ai]`): importing this module registers
tierlock's sandbox provider and its scripted models with Inspect.

It sits at the top of the layers, beside the CLI, because it names both a sandbox-layer module and
the tasks' agents; nothing imports it but Inspect.
"""

# Each import registers through a decorator (@sandboxenv, @modelapi).
import tierlock.sandbox._provider  # the `tierlock` sandbox
import tierlock.tasks.agents  # noqa: F401  (tierlock/diligent, tierlock/reckless, tierlock/weak)
