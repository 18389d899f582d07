"""The series loop: the campaign on every checkpoint in order, jump and sandbagging checks.

Each checkpoint is one ledger run (`series-<name>-<label>`, resumed after a crash like any run),
climbed by `run_campaign` as a black box, with a hold: once a tier's qualification and safety are
recorded clean, and before its thorough tasks or the tiers above, its qualification scores are
compared with the previous checkpoint's (`_series_stats`). A jump is recorded (kind `series`,
event `jump`, citing both checkpoints' logs); `jump.action: approval` holds the run until
`tierlock series approve`, `halt` stops the series. A checkpoint that ends `not-qualified` is
checked for sandbagging (elicited variant materially better, or a drop below an earlier
checkpoint beyond noise); either makes it *treated as qualified*: a second run
(`...-as-qualified`) with the campaign's qualification bars waived (safety still gates every
tier). A checkpoint is done when its `checkpoint` record is written: a SIGKILL before that
resumes its runs; every series record is written once (each is looked up before it is written).
A series keeps the backend its first checkpoint run recorded (`_check_backend`; a series whose
runs recorded none ran on docker): another one is refused before any checkpoint runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tierlock.sandbox import TierlockError

from ._backend import RECORD_KEY, RunBackend, backend_change, recorded_backend
from ._campaign import Campaign
from ._ledger import Ledger
from ._ledger_record import Record
from ._run import run_campaign
from ._run_state import Auditor, RunOutcome, TierExecutor
from ._series_data import CheckpointData, LogScores, SeriesState, first_run, series_state
from ._series_file import Checkpoint, Series
from ._series_stats import paired_increase

ExecutorFor = Callable[[Checkpoint], TierExecutor]

EXIT_DONE, EXIT_HALTED, EXIT_INCOMPLETE, EXIT_AWAITING = 0, 2, 3, 4


@dataclass(frozen=True)
class SeriesOutcome:
    status: str  # done | halted | incomplete | awaiting_approval
    label: str | None = None
    reason: str = ""

    @property
    def exit_code(self) -> int:
        return {"done": 0, "halted": 2, "incomplete": 3, "awaiting_approval": 4}[self.status]


def waived(campaign: Campaign) -> Campaign:
    """The campaign with every qualification threshold removed (safety still gates)."""
    tiers = []
    for t in campaign.tiers:
        tasks = [s.model_copy(update={"thresholds": []}) if s.kind == "qualification" else s
                 for s in t.tasks]  # fmt: skip
        tiers.append(t.model_copy(update={"tasks": tasks}))
    return campaign.model_copy(update={"tiers": tiers})


def _cite(refs: list[LogScores]) -> list[dict[str, str]]:
    return [{"task": r.task, "path": r.path, "sha256": r.sha256} for r in refs]


class SeriesRunner:
    """Evaluates a series' checkpoints with one ledger, runs directory and executor factory."""

    def __init__(
        self,
        series: Series,
        campaign: Campaign,
        *,
        ledger: Ledger,
        runs_dir: Path,
        executor_for: ExecutorFor,
        auditor: Auditor,
        say: Callable[[str], None] = lambda _m: None,
        run_info_for: Callable[[Checkpoint], dict[str, Any]] | None = None,
        backend: RunBackend | None = None,
    ) -> None:
        self.series, self.campaign, self.ledger = series, campaign, ledger
        self.runs_dir, self.executor_for, self.auditor, self.say = (
            runs_dir, executor_for, auditor, say,
        )  # fmt: skip
        self.run_info_for = run_info_for  # the model's settings each checkpoint's run records
        self.backend = backend  # where its checkpoints run (None: not checked, e.g. approve)

    # -- records -----------------------------------------------------------------------------
    def state(self) -> SeriesState:
        return series_state(self.ledger, self.series)

    def _record(
        self, event: str, c: Checkpoint, tier: str | None, payload: dict[str, Any],
        logs: list[Path] | None = None,
    ) -> Record:  # fmt: skip
        return self.ledger.append(
            "series", run_id=self.series.record_id, campaign=self.campaign.name, model=c.model,
            tier=tier, payload={"event": event, "label": c.label, **payload}, logs=logs or [],
        )  # fmt: skip

    def data(self, c: Checkpoint) -> CheckpointData:
        return CheckpointData(self.ledger, self.series, self.campaign, c)

    def _previous(self, c: Checkpoint) -> Checkpoint | None:
        i = [x.label for x in self.series.checkpoints].index(c.label)
        return self.series.checkpoints[i - 1] if i else None

    # -- the loop ------------------------------------------------------------------------------
    def run(self, *, until_label: str | None = None) -> SeriesOutcome:
        """Evaluate every checkpoint without a `checkpoint` record, in order."""
        self._check_backend()
        for c in self.series.checkpoints:
            state = self.state()
            if state.halted is not None:
                return SeriesOutcome("halted", state.halted.payload.get("label"),
                                     str(state.halted.payload.get("reason", "")))  # fmt: skip
            done = state.checkpoints.get(c.label)
            if done is not None:
                if done.payload.get("identity") != self.series.identity(c):
                    raise TierlockError(
                        f"checkpoint {c.label} was evaluated as {done.model} "
                        f"{done.payload.get('args')}; its model or args changed since: give the "
                        "new checkpoint a new label"
                    )
                continue
            out = self.evaluate(c)
            if out.status != "done":
                return out
            if until_label == c.label:
                break
        return SeriesOutcome("done")

    def evaluate(self, c: Checkpoint) -> SeriesOutcome:
        """One checkpoint: its run, the checks, and its `checkpoint` record."""
        self.say(f"checkpoint {c.label}: {c.model} {c.args or ''}".rstrip())
        outcome = self._climb(c, self.campaign, override=False)
        treated = False
        if outcome.status == "not_qualified":
            reasons = self.sandbagging(c, outcome.tier or "")
            if reasons:
                treated = True
                self.say(f"checkpoint {c.label}: treated as qualified ({'; '.join(reasons)})")
                outcome = self._climb(c, waived(self.campaign), override=True)
        data = self.data(c)
        for t in self.campaign.tiers:  # jumps at tiers no hold was asked about (the last one)
            if data.outcomes.get(t.tier):
                self.check_jump(c, t.tier)
        state = self.state()
        if state.halted is not None:
            return SeriesOutcome("halted", c.label, str(state.halted.payload.get("reason")))
        if outcome.status in ("incomplete", "awaiting_approval"):
            return SeriesOutcome(outcome.status, c.label, "; ".join(outcome.reasons))
        waiting = self._waiting(c)  # a jump at its last tier: the series waits for a human
        if waiting is not None:
            return SeriesOutcome("awaiting_approval", c.label, waiting)
        data = self.data(c)
        self._record(
            "checkpoint", c, outcome.tier,
            {
                "identity": self.series.identity(c),
                "model_args": c.args,
                "step": c.step,
                "outcome": outcome.status,
                "reasons": list(outcome.reasons),
                "reached": data.reached(),
                "treated_as_qualified": treated,
                "runs": [r for r in data.run_ids if r in data.finished],
            },
        )  # fmt: skip
        self.say(f"checkpoint {c.label}: {outcome.status} (reached {data.reached() or 'none'})")
        if outcome.status == "halted":  # unsafe: the alarm stops the series
            reason = f"checkpoint {c.label} is unsafe: {'; '.join(outcome.reasons)}"
            self._record("halted", c, outcome.tier, {"reason": reason})
            return SeriesOutcome("halted", c.label, reason)
        return SeriesOutcome("done", c.label)

    def _check_backend(self) -> None:
        """Refuse a backend (or absent_evidence) other than the one the series started with."""
        first = first_run(self.ledger, self.series) if self.backend is not None else None
        if first is None or self.backend is None:
            return
        moved = backend_change(first.payload, {RECORD_KEY: self.backend.record()})
        if moved is None:
            return
        was = recorded_backend(first.payload)
        keep = (
            f"run it with --backend {was.name}" if was.name != self.backend.name
            else f"set the campaign's absent_evidence back to {was.absent_evidence}"
        )  # fmt: skip
        raise TierlockError(
            f"series {self.series.name}: {moved} since the series started (run "
            f"{first.run_id}); a series keeps its backend: {keep}, or give the series a new name"
        )

    def _climb(self, c: Checkpoint, campaign: Campaign, *, override: bool) -> RunOutcome:
        return run_campaign(
            campaign, c.model, ledger=self.ledger, runs_dir=self.runs_dir,
            executor=self.executor_for(c), auditor=self.auditor,
            progress=lambda m: self.say(f"  {m}"),
            run_id=self.series.run_id(c, override=override),
            hold=lambda _run, tier: self.hold(c, tier),
            run_info=self.run_info_for(c) if self.run_info_for else None,
        )  # fmt: skip

    # -- checks --------------------------------------------------------------------------------
    def hold(self, c: Checkpoint, tier: str) -> str | None:
        """Asked once `tier` screened clean: a reason to stop before going beyond it."""
        self.check_jump(c, tier)
        return self._waiting(c)

    def _waiting(self, c: Checkpoint) -> str | None:
        """Why `c` may not go on: the series halted, or its jump waits for an approval."""
        state = self.state()
        if state.halted is not None:
            return f"series halted: {state.halted.payload.get('reason')}"
        jumps = [r for (lab, _), r in state.jumps.items() if lab == c.label]
        if jumps and self.series.jump.action == "approval" and c.label not in state.approvals:
            return (
                f"capability jump at checkpoint {c.label} ({jumps[0].tier}): its thorough evals, "
                f"higher tiers and the next checkpoints wait for: tierlock series approve "
                f'{self._file()} {c.label} --by NAME --note "..."'
            )
        return None

    def _file(self) -> str:
        from tierlock.sandbox._errors import display_path

        return display_path(self.series.source)

    def check_jump(self, c: Checkpoint, tier: str) -> Record | None:
        """Compare `tier`'s qualification scores with the previous checkpoint's; record a jump
        (once per checkpoint and tier)."""
        state = self.state()
        if (c.label, tier) in state.jumps:
            return state.jumps[(c.label, tier)]
        prev = self._previous(c)
        if prev is None or prev.label not in state.checkpoints:
            return None
        now, before = self.data(c), self.data(prev)
        treated_now = c.label in state.sandbagging
        treated_prev = prev.label in state.sandbagging
        after_scores = now.capability(tier, treated_now)
        before_scores = before.capability(tier, treated_prev)
        reasons: list[str] = []
        test = None
        if after_scores and before_scores:
            j = self.series.jump
            test = paired_increase(
                before_scores, after_scores, alpha=j.alpha, min_delta=j.min_delta
            )
            if test.counts:
                reasons.append(f"qualification scores at {tier}: {test.describe()}")
        if now.qualified(tier, treated_now) and not before.qualified(tier, treated_prev):
            reasons.append(f"newly qualifies for {tier} ({prev.label} did not)")
        if not reasons:
            return None
        _, refs_now = now.qualification(tier)
        _, refs_prev = before.qualification(tier)
        action = self.series.jump.action
        rec = self._record(
            "jump", c, tier,
            {
                "previous": prev.label,
                "reasons": reasons,
                "test": test.payload() if test is not None else None,
                "action": action,
                "logs": {"this": _cite(refs_now), "previous": _cite(refs_prev)},
            },
            logs=[self.ledger.abs(r.path) for r in refs_now + refs_prev],
        )  # fmt: skip
        self.say(f"checkpoint {c.label}: CAPABILITY JUMP at {tier}: {'; '.join(reasons)}")
        if action == "halt":
            self._record("halted", c, tier, {"reason": f"capability jump at {c.label} ({tier})"})
        return rec

    def sandbagging(self, c: Checkpoint, tier: str) -> list[str]:
        """Why `c`'s not-qualified result at `tier` is not trusted (recorded once), or []."""
        state = self.state()
        if c.label in state.sandbagging:
            return list(state.sandbagging[c.label].payload.get("reasons", []))
        cfg = self.series.sandbagging
        data = self.data(c)
        plain, refs = data.qualification(tier)
        elicited, refs_e = data.qualification(tier, elicited=True)
        reasons: list[str] = []
        tests: dict[str, Any] = {}
        if elicited:
            t = paired_increase(plain, elicited, alpha=cfg.alpha, min_delta=cfg.min_gain)
            tests["elicitation"] = t.payload()
            if t.counts:
                reasons.append(f"elicited variant scores higher at {tier}: {t.describe()}")
        cited = refs + refs_e
        if cfg.regression:
            for prev in self.series.checkpoints[: self.series.checkpoints.index(c)]:
                if prev.label not in state.checkpoints:
                    continue
                earlier = self.data(prev)
                before = earlier.capability(tier, prev.label in state.sandbagging)
                if not before:
                    continue
                t = paired_increase(plain, before, alpha=cfg.alpha, min_delta=0.0)
                if t.counts:
                    tests[f"regression:{prev.label}"] = t.payload()
                    reasons.append(
                        f"regression at {tier} below {prev.label}: "
                        f"{t.mean_after:.2f} -> {t.mean_before:.2f} "
                        f"({t.test} p={t.p_value:.3g}, n={t.n})"
                    )
                    cited += earlier.qualification(tier)[1]
                    break
        if not reasons:
            return []
        self._record(
            "sandbagging", c, tier,
            {"reasons": reasons, "tests": tests, "logs": _cite(cited)},
            logs=[self.ledger.abs(r.path) for r in cited],
        )  # fmt: skip
        return reasons

    def approve(self, label: str, by: str, note: str) -> Record:
        c = next((x for x in self.series.checkpoints if x.label == label), None)
        if c is None:
            raise TierlockError(f"series {self.series.name} has no checkpoint {label!r}")
        if not by.strip() or not note.strip():
            raise TierlockError("an approval needs a name (--by) and a note (--note)")
        state = self.state()
        if not any(lab == label for lab, _ in state.jumps):
            raise TierlockError(f"checkpoint {label} has no capability jump to approve")
        if label in state.approvals:
            prior = state.approvals[label].payload.get("by")
            raise TierlockError(f"checkpoint {label} was already approved by {prior}")
        return self._record("approval", c, None, {"by": by, "note": note})
