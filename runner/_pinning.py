"""Pinning: what a run was started with, so that resuming or re-running it after a change refuses.

A run records, in its `run_started` record, the `pins` of its campaign:

- the campaign's digest (its content, defaults left out) and one digest per tier spec;
- per tier, the **effective** policy (after `extends` is resolved) as a digest of its canonical
  JSON, the SHA-256 of every file of its `extends` chain, and the SHA-256 of the seccomp profile
  and of the approval file it names;
- per task, the SHA-256 of its `.py` file and of the `data/` folder beside it (registry tasks have
  no file to pin).

`pin_changes` compares a recorded run with the campaign as it is now and names every difference
that changes what runs: a comment in a policy changes no pin (the effective policy is the same);
the chain's file hashes are recorded only to name the parent that changed. Files are compared by
content, not by path, so a checkout moved elsewhere keeps its runs.
Runs recorded before pins existed fall back to the old check: the campaign digest and each tier's
policy file bytes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from tierlock.sandbox import TierlockError, load_policy_file
from tierlock.sandbox._errors import display_path

from ._backend import backend_change
from ._campaign import Campaign, TierSpec
from ._ledger_record import canonical_json, sha256_file

PINS_VERSION = 1


def _sha256(path: Path) -> str:
    try:
        return sha256_file(path)
    except OSError as e:
        raise TierlockError(f"{display_path(path)}: cannot read ({e.strerror or e})") from None


def _digest(data: Any) -> str:
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()


def _file_pin(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    return {"file": str(path), "sha256": _sha256(path) if path.is_file() else None}


def _tree_digest(folder: Path) -> str:
    """SHA-256 over the names and contents of every regular file below `folder` (sorted;
    caches and hidden files left out)."""
    h = hashlib.sha256()
    try:
        entries = sorted(folder.rglob("*"))
    except OSError as e:
        raise TierlockError(f"{display_path(folder)}: cannot list ({e.strerror or e})") from None
    for p in entries:
        rel = p.relative_to(folder)
        if any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
            continue
        if p.is_file() and not p.is_symlink():
            h.update(f"{rel.as_posix()}\0{_sha256(p)}\n".encode())
        elif p.is_symlink():
            h.update(f"{rel.as_posix()}\0-> {p.readlink()}\n".encode())
    return h.hexdigest()


def policy_pin(path: Path) -> dict[str, Any]:
    """The effective policy at `path`, and every file it is made of or names."""
    loaded = load_policy_file(path)
    policy = loaded.policy
    seccomp = policy.process.seccomp.strip()
    seccomp_path = (
        None
        if seccomp.lower() in ("default", "unconfined")
        else loaded.resolve_path(("process", "seccomp"), seccomp)
    )
    approval = (policy.tools.approval or "").strip()
    approval_path = loaded.resolve_path(("tools", "approval"), approval) if approval else None
    return {
        "file": str(path),
        "effective": _digest(policy.model_dump(mode="json")),
        "files": {str(f.resolve()): _sha256(f) for f in loaded.files},
        "seccomp": _file_pin(seccomp_path),
        "approval": _file_pin(approval_path),
    }


def _task_pins(campaign: Campaign, tier: TierSpec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for task in tier.tasks:
        file = campaign.task_ref(task).partition("@")[0]
        if not file.endswith(".py"):
            out[task.name] = None  # a registry name: nothing on disk to pin
            continue
        path = Path(file)
        data = path.parent / "data"
        out[task.name] = {
            "file": str(path),
            "sha256": _sha256(path) if path.is_file() else None,
            "data": _tree_digest(data) if data.is_dir() else None,
        }
    return out


def pins(campaign: Campaign) -> dict[str, Any]:
    """Everything a run of `campaign` depends on, as digests (recorded when the run starts)."""
    return {
        "version": PINS_VERSION,
        "campaign": _digest(campaign.model_dump(mode="json", exclude_defaults=True)),
        "order": [t.tier for t in campaign.tiers],  # the ledger stores JSON with sorted keys
        "tiers": {
            t.tier: {
                "spec": _digest(t.model_dump(mode="json", exclude_defaults=True)),
                "policy": policy_pin(campaign.policy_path(t)),
                "tasks": _task_pins(campaign, t),
            }
            for t in campaign.tiers
        },
    }


def pin_changes(recorded: dict[str, Any], campaign: Campaign) -> list[str]:
    """What differs between a run's `run_started` payload and `campaign` now (empty: nothing)."""
    old = recorded.get("pins")
    if not isinstance(old, dict) or old.get("version") != PINS_VERSION:
        return _legacy_changes(recorded, campaign)
    new = pins(campaign)
    out: list[str] = []
    old_tiers, new_tiers = old.get("tiers") or {}, new["tiers"]
    old_order = old.get("order") or []
    if old_order != new["order"]:
        out.append(
            f"campaign {campaign.name}: its tiers changed (were {', '.join(old_order) or '-'}, "
            f"now {', '.join(new['order'])})"
        )
    for name, now in new_tiers.items():
        was = old_tiers.get(name)
        if isinstance(was, dict):
            out.extend(_tier_changes(campaign, name, was, now))
    if not out and old.get("campaign") != new["campaign"]:
        out.append(f"campaign {campaign.name} ({display_path(campaign.source)}) changed")
    return out


def _tier_changes(
    campaign: Campaign, tier: str, was: dict[str, Any], now: dict[str, Any]
) -> list[str]:
    out: list[str] = []
    if was.get("spec") != now["spec"]:
        out.append(
            f"campaign {campaign.name} ({display_path(campaign.source)}): tier {tier} "
            "(its tasks, gate or limits) changed"
        )
    out.extend(_policy_changes(tier, was.get("policy") or {}, now["policy"]))
    old_tasks, new_tasks = was.get("tasks") or {}, now["tasks"]
    for task, pin in new_tasks.items():
        prior = old_tasks.get(task)
        if pin is None or not isinstance(prior, dict):
            continue
        if prior.get("sha256") != pin["sha256"]:
            out.append(f"task file {display_path(pin['file'])} (task {task}, tier {tier}) changed")
        if prior.get("data") != pin["data"]:
            data = display_path(Path(pin["file"]).parent / "data")
            out.append(f"task data {data}/ (task {task}, tier {tier}) changed")
    return out


def _policy_changes(tier: str, was: dict[str, Any], now: dict[str, Any]) -> list[str]:
    out: list[str] = []
    label = f"the {tier} policy {display_path(now['file'])}"
    if was.get("effective") != now["effective"]:
        old_files, new_files = was.get("files") or {}, now["files"]
        changed = [f for f, h in new_files.items() if old_files.get(f) != h]
        changed += [f for f in old_files if f not in new_files]
        parents = [display_path(f) for f in changed if f != str(Path(now["file"]).resolve())]
        why = f"via its parent {', '.join(parents)}" if parents else "its own content"
        out.append(f"{label} (effective policy, {why}) changed")
    for role, what in (("seccomp", "seccomp profile"), ("approval", "approval file")):
        old_pin, new_pin = was.get(role), now[role]
        if (old_pin is None) != (new_pin is None):  # named now and not then, or the reverse
            named = f" {display_path(new_pin['file'])}" if new_pin else " (no longer named)"
            out.append(f"{label}: its {what}{named} changed")
        elif old_pin is not None and new_pin is not None and old_pin["sha256"] != new_pin["sha256"]:
            out.append(f"{label}: its {what} {display_path(new_pin['file'])} changed")
    return out


def _legacy_changes(recorded: dict[str, Any], campaign: Campaign) -> list[str]:
    """Runs recorded before pins: the campaign digest and each policy file's own bytes."""
    if recorded.get("campaign_digest") != campaign.digest():
        return [f"campaign {campaign.name} ({display_path(campaign.source)}) changed"]
    old = recorded.get("policy_sha256") or {}
    out = []
    for t in campaign.tiers:
        path = campaign.policy_path(t)
        digest = _sha256(path) if path.is_file() else None
        if old.get(t.tier) != digest:
            out.append(f"the {t.tier} policy {display_path(path)} changed")
    return out


OPERATIONAL_SETTINGS = frozenset({"max_retries", "timeout", "attempt_timeout", "max_connections"})
"""Generation settings that change how calls are made, not what the model answers: a resumed run
may change them (e.g. a longer `--timeout` after an outage)."""


def settings_changes(recorded: dict[str, Any], run_info: dict[str, Any] | None) -> list[str]:
    """How the model's arguments and generation settings (as the ledger records them, secrets
    masked) differ from the run's `run_started` record: a resumed run must answer with the same
    model as the tiers it already passed. Runs recorded before settings were recorded are not
    compared; operational settings (`OPERATIONAL_SETTINGS`) may change. The backend (docker,
    k8s) is compared too, a run recorded without one having run on docker: a resume cannot
    silently move a run to another backend (`_backend.backend_change`)."""
    if run_info is None:
        return []
    changes = []
    moved = backend_change(recorded, run_info)
    if moved is not None:
        changes.append(moved)
    for key, label in (("model_args", "model argument"), ("generate_config", "generation setting")):
        if key not in recorded or key not in run_info:
            continue
        was, now = dict(recorded[key] or {}), dict(run_info[key] or {})
        if key == "generate_config":
            for op in OPERATIONAL_SETTINGS:
                was.pop(op, None)
                now.pop(op, None)
        for name in sorted(set(was) | set(now)):
            if "***" in (was.get(name), now.get(name)):  # a secret: never recorded, not compared
                continue
            if was.get(name) != now.get(name):
                changes.append(
                    f"{label} {name} changed ({_shown(was, name)} → {_shown(now, name)})"
                )
    return changes


def _shown(values: dict[str, Any], name: str) -> str:
    return repr(values[name]) if name in values else "unset"
