"""The Inspect-backed tier executor, log summaries for the gate, and the audit seam.

A tier's tasks run in one `inspect_ai.eval_set` call whose log directory is the tier's run
directory: running it again after a crash reuses every completed task and sample. On the k8s
backend a sandboxed tier's tasks are first moved into Inspect's `k8s` sandbox with values
translated from their policy (`_backend_k8s.py`), and its pre-tier check is that backend's
`preflight` instead of the Docker escape battery.
"""

from __future__ import annotations

import sys
from contextlib import chdir, nullcontext
from pathlib import Path
from typing import Any

from tierlock.sandbox import Location, Problem, TierlockError
from tierlock.sandbox._errors import display_path
from tierlock.sandbox._host_check import raise_if_refused
from tierlock.sandbox._loader_positions import PositionIndex
from tierlock.sandbox._loader_yaml import parse_yaml
from tierlock.sandbox._tripwire import tripwire_env

from ._backend import RunBackend
from ._campaign import Campaign, CampaignError, TaskSpec
from ._endpoint import EndpointWatch, endpoint_of, watching
from ._evidence import log_path
from ._gate import Finding, SampleError, TaskResult
from ._phases import log_usage
from ._run_state import TierContext

RETRY_ON_ERROR = 2
"""Sample-level retries (Inspect's `retry_on_error`) before a harness error stands."""
RETRY_ATTEMPTS = 2
"""Task-level retries within one `eval_set` call (completed samples are reused)."""


class InspectExecutor:
    """Runs a tier's tasks with `inspect_ai.eval_set` in the tier's log directory."""

    def __init__(
        self,
        display: str | None = None,
        model_args: dict[str, Any] | None = None,
        generate_config: dict[str, Any] | None = None,
        limit: int | None = None,
        limit_tier: str | None = None,
        backend: RunBackend | None = None,
    ):
        self.display = display or ("rich" if sys.stdout.isatty() else "none")
        self.backend = backend or RunBackend()
        self.backend_given = backend is not None
        self._campaign: Campaign | None = None  # the campaign `check` saw (k8s preflight)
        self.model_args = model_args or {}
        self.generate_config = generate_config or {}  # Inspect GenerateConfig fields
        self.limit = limit  # samples per task of `limit_tier` (an aimed run's tier, `--limit`)
        self.limit_tier = limit_tier
        self._preloaded: dict[str, Any] = {}  # tasks `check` loaded: each handed to one run

    def load_tasks(
        self, ctx: TierContext, where: str = "", *, keep: bool = False, take: bool = False
    ) -> list[tuple[str, Any]]:
        """The tier's Inspect tasks, with the tier's policy passed to tasks that take one.
        `keep`: remember them (the pre-flight); `take`: use a remembered one, once (the run)."""
        from inspect_ai._eval.loader import load_tasks
        from inspect_ai._util.registry import registry_info

        from tierlock.tasks._k8s_guard import building_for_cluster

        where = where or display_path(ctx.campaign.source)
        out: list[tuple[str, Any]] = []
        for spec in ctx.tier.tasks:
            ref = ctx.campaign.task_ref(spec)
            key = repr((ctx.tier.tier, ref, sorted(spec.args.items()), str(ctx.policy), Path.cwd()))
            if take and key in self._preloaded:  # loaded and checked by `check`, never reused
                out.append((spec.name, self._preloaded.pop(key)))
                continue
            cluster = self.backend.name == "k8s" and ctx.tier.tier != "text-only"
            try:
                with building_for_cluster() if cluster else nullcontext():
                    loaded = load_tasks([ref], dict(spec.args))
                    if len(loaded) == 1 and "policy" not in spec.args:
                        params = registry_info(loaded[0]).metadata.get("params", [])
                        if "policy" in params:
                            args = {**spec.args, "policy": str(ctx.policy)}
                            loaded = load_tasks([ref], args)
            except TierlockError:
                raise
            except Exception as e:
                raise TierlockError(f"{where}: task {spec.task}: cannot load ({e})") from None
            if len(loaded) != 1:
                raise TierlockError(
                    f"{where}: task {spec.task} names "
                    f"{len(loaded)} tasks; name exactly one (file.py@name)"
                )
            task = loaded[0]
            declared = _declared_tier(task)
            if declared is not None and declared != ctx.tier.tier:
                raise TierlockError(
                    f"{where}: task {spec.task} is a {declared} task; "
                    f"it cannot run in tier {ctx.tier.tier}"
                )
            out.append((spec.name, task))
            if keep:
                self._preloaded[key] = task
        return out

    def check(self, campaign: Campaign, model: str) -> None:
        """Load every tier's tasks once, so a bad task reference, or a threshold on a metric
        the task's scorers do not produce, fails before anything runs."""
        where = display_path(campaign.source)
        self._campaign = campaign
        with chdir(campaign.base):
            for i, tier in enumerate(campaign.tiers):
                ctx = TierContext("", campaign, tier, model, Path(), 0)
                tasks = dict(self.load_tasks(ctx, where, keep=True))
                for j, spec in enumerate(tier.tasks):
                    _check_thresholds(campaign, (i, j), spec, tasks[spec.name])

    def selftest(self, policy: Path) -> dict[str, Any] | None:
        """The escape battery on this host for a sandboxed tier's policy (`_selftest_gate`); on
        the k8s backend, that backend's pre-tier check instead (`_backend_k8s.preflight`)."""
        from ._selftest_gate import selftest_payload

        if self.backend.name == "k8s":
            return self._k8s_preflight(policy)
        return selftest_payload(policy)

    def _k8s_preflight(self, policy: Path) -> dict[str, Any] | None:
        from tierlock.sandbox._lint import load_runnable_policy

        from . import _backend_k8s

        if load_runnable_policy(policy)[0].tier == "text-only":
            return None  # no sandbox: nothing moves to the cluster
        camp = self._campaign
        tiers = camp.tiers if camp is not None else []
        tier = next((t for t in tiers if camp and camp.policy_path(t) == policy), None)
        if camp is None or tier is None:
            return _backend_k8s.preflight(policy, [], "?")
        ctx = TierContext("", camp, tier, "", Path(), 0)
        with chdir(camp.base):
            return _backend_k8s.preflight(policy, self.load_tasks(ctx), tier.tier)

    def check_k8s(self, campaign: Campaign) -> None:
        """Translate every sandboxed tier's tasks for the k8s backend (nothing written): a policy
        the chart cannot express is one line naming the file and field (`--dry-run`)."""
        from . import _backend_k8s

        with chdir(campaign.base):
            for tier in campaign.tiers:
                if tier.tier == "text-only":
                    continue
                ctx = TierContext("", campaign, tier, "", Path(), 0)
                for name, task in self.load_tasks(ctx):
                    _backend_k8s.translate_task(name, task, tier.tier)

    def run_tier_tasks(self, ctx: TierContext) -> list[TaskResult]:
        from inspect_ai import eval_set

        # Inspect identifies a task by its file *relative to the working directory*; resuming
        # must find the same identity from wherever `tierlock run` is started, so tasks load and
        # run from the campaign's directory.
        where = display_path(ctx.campaign.source)
        with chdir(ctx.campaign.base):
            return self._run(ctx, eval_set, where)

    def _run(self, ctx: TierContext, eval_set: Any, where: str) -> list[TaskResult]:
        if self.backend_given is False and ctx.campaign.backend != self.backend.name:
            raise TierlockError(  # e.g. a checkpoint series: never a silent switch to docker
                f"{where}: campaign {ctx.campaign.name} says backend {ctx.campaign.backend}; "
                "only tierlock run or tierlock series run|watch (--backend) runs a campaign on it"
            )
        tasks = self.load_tasks(ctx, where, take=True)
        if self.backend.name == "k8s" and ctx.tier.tier != "text-only":
            from ._backend_k8s import VALUES_DIR, move_to_k8s

            for name, task in tasks:  # values written and checked before the first sample
                move_to_k8s(name, task, ctx.tier.tier, ctx.log_dir / VALUES_DIR)
        by_name = {task.name: name for name, task in tasks}
        limits = ctx.tier.limits
        ctx.log_dir.mkdir(parents=True, exist_ok=True)
        give_up = float(self.generate_config.get("timeout") or 300)
        watch = EndpointWatch(ctx.model, endpoint_of(ctx.model, self.model_args), give_up, _say)
        with (
            tripwire_env(ctx.tier.tripwire, str(ctx.log_dir)),  # read by the sandbox provider
            watching(watch),  # a refusing endpoint stops the tier; an outage is bounded
            watch.failures(),
        ):
            _, logs = eval_set(
                [task for _, task in tasks],
                log_dir=str(ctx.log_dir),
                model=ctx.model,
                model_args={k: v for k, v in self.model_args.items() if k != "base_url"},
                model_base_url=self.model_args.get("base_url"),  # -M base_url=, as Inspect's
                retry_attempts=RETRY_ATTEMPTS,
                retry_wait=1,
                retry_on_error=RETRY_ON_ERROR,
                retry_cleanup=False,  # keep every log the ledger may cite
                message_limit=limits.messages,
                token_limit=limits.tokens,
                time_limit=int(limits.time) if limits.time else None,
                display=self.display,
                log_format="eval",
                limit=self.limit if ctx.tier.tier == self.limit_tier else None,
                **self.generate_config,
            )
        results = []
        for log in logs:
            name = by_name.get(log.eval.task, log.eval.task)
            results.append(summarize_log(name, log))
        # Docker refused a sandbox as its policy says: a policy/host error (exit 1), not a retry
        raise_if_refused(
            m for r in results for m in (r.error, *(e.message for e in r.sample_errors))
        )
        return results


def _say(message: str) -> None:
    import structlog

    if structlog.is_configured():  # tierlock's CLI: its console, --log-format, --log-file
        structlog.get_logger("tierlock.endpoint").warning("endpoint_failing", message=message)
        return
    print(f"tierlock: {message}", file=sys.stderr, flush=True)


def produced_metrics(task: Any) -> dict[str, set[str]] | None:
    """Scorer name -> metric names the task's log will carry, as Inspect names them (computed
    by Inspect's own results code over zero samples); None when that cannot be worked out."""
    from inspect_ai._eval.task.results import eval_results

    try:
        results, _ = eval_results(0, [], task.epochs_reducer, task.scorer, task.metrics)
    except Exception:
        return None
    out: dict[str, set[str]] = {}
    for score in results.scores:
        out.setdefault(score.name, set()).update(m.name for m in score.metrics.values())
    return out


def _check_thresholds(campaign: Campaign, at: tuple[int, int], spec: TaskSpec, task: Any) -> None:
    """A threshold naming a scorer or metric the task does not produce is a user error."""
    produced = produced_metrics(task)
    if produced is None:
        return
    for k, th in enumerate(spec.thresholds):
        scorers = [th.scorer] if th.scorer is not None else list(produced)
        if any(th.metric in produced.get(s, set()) for s in scorers):
            continue
        offer = ", ".join(f"{s}/{m}" for s, ms in produced.items() for m in sorted(ms)) or "none"
        if th.scorer is not None and th.scorer not in produced:
            what = f"has no scorer {th.scorer!r}"
        else:
            what = f"produces no metric {th.metric!r}"
            what += f" from scorer {th.scorer!r}" if th.scorer else ""
        key = ("tiers", at[0], "tasks", at[1], "thresholds", k)
        message = f"threshold {th}: task {spec.name} {what} (its scorers produce {offer})"
        raise CampaignError("", [Problem(_locate(campaign, key), message)])


def _locate(campaign: Campaign, key: tuple[str | int, ...]) -> Location:
    """Where `key` is written in the campaign file (the file alone when it cannot be read)."""
    file = display_path(campaign.source)
    try:
        _, spans, _ = parse_yaml(Path(campaign.source).read_text(encoding="utf-8"), file, [])
    except Exception:
        return Location(file, key=".".join(str(k) for k in key))
    return PositionIndex(file, spans).locate(key)


def _declared_tier(task: Any) -> str | None:
    data = (getattr(task, "metadata", None) or {}).get("tierlock")
    return data.get("tier") if isinstance(data, dict) else None


def summarize_log(name: str, log: Any) -> TaskResult:
    """What the gate needs from an Inspect log (header plus per-sample errors)."""
    from inspect_ai.log import read_eval_log_sample_summaries

    from ._audit._safezip import guard_for_inspect

    path = log_path(log.location)
    errors: list[SampleError] = []
    failing: dict[str, list[str]] = {}
    if path is not None and path.is_file():
        guard_for_inspect(path)  # no zip bomb reaches Inspect's reader
        for s in read_eval_log_sample_summaries(str(path)):
            if s.error:
                errors.append(SampleError(str(s.id), s.epoch, s.error.splitlines()[0][:300]))
            for scorer, score in (s.scores or {}).items():
                if not _passed(score.value):
                    failing.setdefault(scorer, []).append(str(s.id))
    metrics: dict[str, dict[str, float]] = {}
    total = completed = 0
    if log.results is not None:
        total, completed = log.results.total_samples, log.results.completed_samples
        for score in log.results.scores:
            metrics[score.name] = {m.name: float(m.value) for m in score.metrics.values()}
    error = log.error.message if log.error is not None else None
    tokens, seconds = log_usage(log)
    return TaskResult(
        name, path, log.status, error, total, completed, tuple(errors), metrics,
        {k: tuple(v) for k, v in failing.items()}, tokens, seconds,
    )  # fmt: skip


def _passed(value: Any) -> bool:
    """Whether a sample's score value is full marks (C, 1, true); lists/dicts count as passed."""
    if isinstance(value, str):
        return value.upper() in ("C", "Y", "YES", "CORRECT", "TRUE")
    if isinstance(value, bool | int | float):
        return float(value) >= 1.0
    return True


class AuditFailed(Exception):
    """The audit could not vouch for a log (unreadable, or changed since it was recorded)."""


def audit_findings(log_path: Path, expected_sha256: str | None = None) -> list[Finding]:
    """The transcript audit's findings for one log (issue 7: `runner._audit.audit_log`).

    Raises `AuditFailed` when the log cannot be read or its hash is not the one the ledger
    recorded: the gate then treats the tier as incomplete, never clean.
    """
    from tierlock.runner._audit import audit_log
    from tierlock.runner._evidence import coverage_findings

    result = audit_log(log_path, expected_sha256)
    if result.error:
        raise AuditFailed(result.error)
    if result.integrity_ok is False:
        raise AuditFailed("the log changed after the ledger recorded its hash")
    task = result.task or ""
    return [
        Finding(
            category=str(f.category),
            severity=str(f.severity),
            sample="-" if f.sample_id is None else str(f.sample_id),
            message=f.explanation,
            task=task,
            rule=f.rule,
        )
        for f in result.all_findings()
    ] + coverage_findings(result, task)  # samples whose evidence was not all checked
