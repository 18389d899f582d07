"""Shipped campaign files (package data)."""
