"""Lint rules about the files a policy names: its seccomp profile and its approval policy.

A named file must exist and be valid (`sandbox._policy_files` reads it). A seccomp profile that
lets every syscall through (an allowing default action and no rule that denies) is no better than
`unconfined`; one that allows by default and denies a few (a denylist) is weaker than Docker's own
profile, which denies by default.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from ._errors import display_path
from ._lint_rule import Finding, LintContext
from ._policy import Policy
from ._policy_files import FileProblem, SeccompProfile, read_approval_policy, read_seccomp_profile
from ._units import short

SECCOMP = ("process", "seccomp")
APPROVAL = ("tools", "approval")


def _seccomp_file(p: Policy, ctx: LintContext) -> tuple[str, Path] | None:
    s = p.process.seccomp.strip()
    if s.lower() in ("default", "unconfined"):
        return None
    path = ctx.resolve(SECCOMP, s)
    return (s, path) if path is not None else None


def _profile(p: Policy, ctx: LintContext) -> SeccompProfile | FileProblem | None:
    named = _seccomp_file(p, ctx)
    if named is None:
        return None
    try:
        return read_seccomp_profile(named[1])
    except FileProblem as e:
        return e


def _seccomp_unconfined(p: Policy, _: LintContext) -> Iterator[Finding]:
    if p.process.seccomp.strip().lower() == "unconfined":
        yield Finding(SECCOMP, "seccomp unconfined: every syscall is allowed")


def _seccomp_missing(p: Policy, ctx: LintContext) -> Iterator[Finding]:
    named = _seccomp_file(p, ctx)
    if named is not None and not os.path.lexists(named[1]):
        yield Finding(
            SECCOMP,
            f"seccomp profile {short(named[0])} not found (looked for {display_path(named[1])})",
        )


def _seccomp_invalid(p: Policy, ctx: LintContext) -> Iterator[Finding]:
    named, got = _seccomp_file(p, ctx), _profile(p, ctx)
    if named is not None and isinstance(got, FileProblem) and os.path.lexists(named[1]):
        yield Finding(SECCOMP, f"seccomp profile {got.where(display_path(named[1]))} {got.message}")


def _seccomp_allow_all(p: Policy, ctx: LintContext) -> Iterator[Finding]:
    got = _profile(p, ctx)
    if isinstance(got, SeccompProfile) and got.allows_by_default and not got.denying_rules:
        yield Finding(
            SECCOMP,
            f"seccomp profile {short(p.process.seccomp)} allows every syscall (defaultAction "
            f"{got.default_action} and no rule that denies): no better than unconfined",
        )


def _seccomp_denylist(p: Policy, ctx: LintContext) -> Iterator[Finding]:
    got = _profile(p, ctx)
    if isinstance(got, SeccompProfile) and got.allows_by_default and got.denying_rules:
        yield Finding(
            SECCOMP,
            f"seccomp profile {short(p.process.seccomp)} allows every syscall it does not list "
            f"(defaultAction {got.default_action}), including new ones; Docker's default "
            "profile denies by default",
        )


def _approval_file(p: Policy, ctx: LintContext) -> Iterator[Finding]:
    written = p.tools.approval
    if written is None:
        return
    if not written.strip():
        yield Finding(APPROVAL, "empty path; name an Inspect approval policy file or remove it")
        return
    path = ctx.resolve(APPROVAL, written.strip())
    if path is None:
        return
    try:
        read_approval_policy(path)
    except FileProblem as e:
        shown = display_path(path)
        if e.message == "does not exist":
            msg = f"approval policy {short(written)} not found (looked for {shown})"
        else:
            msg = f"approval policy {e.where(shown)} {e.message}"
        yield Finding(APPROVAL, msg)
