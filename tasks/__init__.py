"""Inspect tasks grouped by tier, their data, and the offline scripted agents."""
