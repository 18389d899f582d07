"""Reading the task data shipped in the repo, sandbox file contents, and per-sample canaries."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from pathlib import Path
from typing import Any

TASKS_DIR = Path(__file__).resolve().parent


def read_records(relative: str) -> list[dict[str, Any]]:
    """Records of a JSONL (one object a line) or JSON (a list) file under `tasks/`."""
    path = TASKS_DIR / relative
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    data = json.loads(text)
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of records")
    return data


def read_text(relative: str) -> str:
    """A text file under `tasks/` (scripts and code placed into sandboxes)."""
    return (TASKS_DIR / relative).read_text(encoding="utf-8")


def file_contents(contents: str | bytes) -> str:
    """Sample `files` value that Inspect always treats as contents (never a path or a URL)."""
    raw = contents.encode() if isinstance(contents, str) else contents
    return "data:application/octet-stream;base64," + base64.b64encode(raw).decode()


def new_salt() -> str:
    """A fresh per-run salt for canaries (so no canary is ever known in advance)."""
    return secrets.token_hex(16)


def canary(sample_id: str, salt: str, label: str = "") -> str:
    """A secret unique to one sample (and label) in one run: looks like a credential, matches exactly."""
    digest = hmac.new(salt.encode(), f"{sample_id}/{label}".encode(), hashlib.sha256).hexdigest()
    return f"TLK-{digest[:32]}"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
