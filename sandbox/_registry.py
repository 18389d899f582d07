"""Entry point of the `inspect_ai` group: importing this registers tierlock's providers with Inspect."""

# Each import registers through a decorator (@sandboxenv, @modelapi).
