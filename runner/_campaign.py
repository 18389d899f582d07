"""Campaign files: the ordered tiers a model climbs, each with its policy, tasks and gate.

```yaml
name: default
tiers:
  - tier: text-only
    policy: ../policies/text-only.yaml        # relative to this file
    tasks:
      - task: ../tasks/text_only/qualification.py@text_qualification
        kind: qualification
        args: {}                               # task arguments
        thresholds: ["accuracy >= 0.9"]        # [scorer/]metric op number
      - task: tierlock.tasks.text_only.safety@text_only_safety   # or a module
        kind: safety                           # qualification | safety | thorough
    gate: {max_severity: none, approval_required: false}
    limits: {messages: 30, tokens: 200k, time: 10m}
    on_not_qualified: stop                     # stop (default) | continue
    tripwire: end-sample                       # end-sample (default) | end-tier | record
backend: docker                                # docker (default) | k8s (`--backend` wins)
absent_evidence: block                         # block (default) | accept (see below)
```
Within a tier the phases run in a fixed order, whatever the order of the list: qualification and
safety tasks first (gated together), then, only when that gate is clean, the thorough tasks
(measurements; their thresholds count only when the campaign sets some). A tier with thorough
tasks needs a safety task: what was not shown safe to measure is not measured.
A task is a `.py` file (relative to the campaign file), a dotted module found on the Python path
(`tierlock.tasks.text_only.safety`, what `tierlock init` writes, so a campaign outside the source
tree names the installed tasks), or an Inspect registry name; `@name` picks one task of the file.
`backend: k8s` runs the sandboxed tiers with Inspect's `k8s` sandbox (inspect-k8s-sandbox) and
values translated from each tier's policy (`_backend_k8s.py`); the evidence only tierlock's Docker
provider collects is then absent, and `absent_evidence` says what the gate does with that:
`block` (a tier cannot be clean without it: incomplete, with the reason) or `accept` (clean
allowed when every other check passes, recorded as accepted in the verdict and the ledger).
Unknown keys are errors; every error names file:line:col and the key path.
"""

from __future__ import annotations

import hashlib
import json
import operator
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
)

from tierlock.sandbox import (
    TIERS,
    Tier,
    TierlockError,
)
from tierlock.sandbox._units import parse_duration

from ._model_args import check_generate_config
from ._task_ref import task_file

SEVERITIES = ("low", "medium", "high", "critical")
"""Audit severities, least severe first. A gate's `max_severity` is the worst it tolerates."""

Severity = Literal["none", "low", "medium", "high", "critical"]

Kind = Literal["qualification", "safety", "thorough"]
KINDS: tuple[Kind, ...] = ("qualification", "safety", "thorough")
"""Task kinds in the order a tier runs them."""
SCREENING: tuple[Kind, ...] = ("qualification", "safety")
"""The kinds gated before a tier's thorough tasks may start."""

DEFAULT_CAMPAIGN = Path(__file__).parent / "campaigns" / "default.yaml"


class CampaignError(TierlockError):
    """A campaign file cannot be loaded or is inconsistent."""


_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
}
_THRESHOLD = re.compile(r"^\s*([A-Za-z_][\w./-]*)\s*(>=|<=|==|>|<)\s*(-?\d+(?:\.\d+)?)\s*$")


class Threshold(BaseModel):
    """`[scorer/]metric op value`, e.g. `accuracy >= 0.9` or `refusal/mean >= 0.95`."""

    model_config = ConfigDict(frozen=True)

    scorer: str | None
    metric: str
    op: str
    value: float

    @classmethod
    def parse(cls, text: str) -> Threshold:
        m = _THRESHOLD.match(text)
        if not m:
            raise ValueError(
                f"{text!r} is not a threshold; write e.g. 'accuracy >= 0.9' "
                f"(operators: {', '.join(_OPS)})"
            )
        name, op, value = m.groups()
        scorer, _, metric = name.rpartition("/")
        return cls(scorer=scorer or None, metric=metric, op=op, value=float(value))

    def met(self, actual: float) -> bool:
        return _OPS[self.op](actual, self.value)

    def __str__(self) -> str:
        name = f"{self.scorer}/{self.metric}" if self.scorer else self.metric
        return f"{name} {self.op} {self.value:g}"


def _threshold(v: Any) -> Any:
    return Threshold.parse(v) if isinstance(v, str) else v


def _count(v: Any) -> Any:
    """Token counts: an int or `200k` / `1m` (decimal)."""
    if isinstance(v, str):
        m = re.fullmatch(r"\s*(\d+)\s*([km]?)\s*", v, re.IGNORECASE)
        if not m:
            raise ValueError(f"{v!r} is not a count; write e.g. 200000 or 200k")
        return int(m.group(1)) * {"": 1, "k": 1000, "m": 1000**2}[m.group(2).lower()]
    return v


Count = Annotated[int, BeforeValidator(_count)]
Seconds = Annotated[float, BeforeValidator(parse_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskSpec(_Strict):
    """One Inspect task of a tier."""

    task: str = Field(
        description="Inspect task: `file.py@name` (relative to the campaign file), a module "
        "`package.module@name` (found on the Python path), or a registry name"
    )
    kind: Kind = Field(
        description="qualification (can it do the thing?), safety (does it stay inside the "
        "lines?), thorough (measurement, runs only once both passed)"
    )
    args: dict[str, Any] = Field(default_factory=dict, description="Task arguments")
    thresholds: list[Annotated[Threshold, BeforeValidator(_threshold)]] = Field(
        default_factory=list, description="Metric thresholds the gate checks, e.g. accuracy >= 0.9"
    )

    @property
    def name(self) -> str:
        """A short name for messages: the part after `@`, else the registry name."""
        return self.task.rpartition("@")[2] or self.task


class Gate(_Strict):
    """What makes a tier clean, beyond every sample completing."""

    max_severity: Severity = Field(
        "none", description="Worst audit severity tolerated; none: any finding fails the gate"
    )
    approval_required: bool = Field(
        False, description="A named human must approve (tierlock approve) before the tier starts"
    )


class SampleLimits(_Strict):
    """Per-sample limits passed to Inspect."""

    messages: int | None = Field(None, gt=0, description="Message limit per sample")
    tokens: Count | None = Field(None, gt=0, description="Token limit per sample, e.g. 200k")
    time: Seconds | None = Field(None, gt=0, description="Wall time per sample, e.g. 10m")


class TierSpec(_Strict):
    """One rung of the ladder."""

    tier: Tier
    policy: str = Field(description="Policy file, relative to the campaign file")
    tasks: list[TaskSpec] = Field(min_length=1)
    gate: Gate = Field(default_factory=lambda: Gate.model_validate({}))
    limits: SampleLimits = Field(default_factory=lambda: SampleLimits.model_validate({}))
    on_not_qualified: Literal["stop", "continue"] = Field(
        "stop",
        description="Below the qualification bar (and safe): stop the climb here, or continue "
        "to the next tier (this tier's thorough tasks are skipped either way)",
    )
    evidence: Literal["sandbox", "transcript-only"] = Field(
        "sandbox",
        description="`sandbox`: a log whose samples lack tierlock's sandbox evidence (conformance, "
        "filesystem diff, resource counters, proxy log) makes the tier incomplete; "
        "`transcript-only`: accept audits of the transcript alone for samples made without "
        "tierlock's sandbox (logs made elsewhere)",
    )
    tripwire: Literal["end-sample", "end-tier", "record"] = Field(
        "end-sample",
        description="A critical event while a sample runs (canary, escape probe, refused egress, "
        "write outside the writable paths): end the sample, end the tier's remaining samples "
        "too, or only record it (sandbox._tripwire)",
    )

    @field_validator("tasks")
    @classmethod
    def _safety_before_thorough(cls, tasks: list[TaskSpec]) -> list[TaskSpec]:
        kinds = {t.kind for t in tasks}
        if "thorough" in kinds and "safety" not in kinds:
            raise ValueError(
                "thorough tasks need a safety task in the same tier (they run only once the "
                "tier's safety is shown clean)"
            )
        return tasks

    def tasks_of(self, *kinds: Kind) -> list[TaskSpec]:
        """The tier's tasks of the given kinds, in the order the tier runs them."""
        return [t for k in KINDS if k in kinds for t in self.tasks if t.kind == k]

    @property
    def screening(self) -> list[TaskSpec]:
        """Qualification then safety tasks: what the tier's first gate decides from."""
        return self.tasks_of(*SCREENING)

    @property
    def thorough(self) -> list[TaskSpec]:
        """Measurement tasks, run only after a clean screening gate."""
        return self.tasks_of("thorough")

    def only(self, tasks: list[TaskSpec]) -> TierSpec:
        """This tier with only `tasks` (what one phase gives its executor)."""
        return self.model_copy(update={"tasks": list(tasks)})


_LATER_TIER_KEYS: dict[str, Any] = {
    "on_not_qualified": "stop",
    "evidence": "sandbox",
    "tripwire": "end-sample",
}
"""Tier keys added after campaigns were first hashed, with their defaults (see `digest`)."""
_LATER_CAMPAIGN_KEYS: dict[str, Any] = {"backend": "docker", "absent_evidence": "block"}
"""Campaign keys added after campaigns were first hashed, with their defaults (see `digest`)."""


class Campaign(_Strict):
    """An ordered ladder of tiers."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    description: str = ""
    tiers: list[TierSpec] = Field(min_length=1)
    model_args: dict[str, Any] = Field(
        default_factory=dict, description="Model arguments (as -M; -M and --model-config win)"
    )
    generate_config: Annotated[dict[str, Any], AfterValidator(check_generate_config)] = Field(
        default_factory=dict,
        description="Inspect GenerateConfig fields, e.g. max_retries, timeout (the command line wins)",
    )
    backend: Literal["docker", "k8s"] = Field(
        "docker",
        description="Where sandboxed tiers run: tierlock's Docker provider, or Inspect's k8s "
        "sandbox with values translated from each tier's policy (`tierlock run --backend` wins)",
    )
    absent_evidence: Literal["block", "accept"] = Field(
        "block",
        description="Evidence the backend cannot collect (on k8s: conformance, container "
        "evidence, proxy log, tripwires): `block` a clean verdict without it (incomplete), or "
        "`accept` it as absent (recorded in the verdict and the ledger); a docker run's missing "
        "evidence is never accepted",
    )
    source: str = Field("", exclude=True, description="(set by the loader) the file it came from")

    @field_validator("tiers")
    @classmethod
    def _ordered(cls, tiers: list[TierSpec]) -> list[TierSpec]:
        seen = [t.tier for t in tiers]
        if len(set(seen)) != len(seen):
            raise ValueError("each tier may appear only once")
        order = [TIERS.index(t) for t in seen]
        if order != sorted(order):
            raise ValueError(f"tiers must go least permissive first: {', '.join(TIERS)}")
        return tiers

    @property
    def base(self) -> Path:
        return Path(self.source).parent if self.source else Path.cwd()

    def policy_path(self, tier: TierSpec) -> Path:
        return (self.base / tier.policy).resolve()

    def task_file(self, task: TaskSpec) -> Path | None:
        """The `.py` file a task names (a path made absolute, or a module's file); None for a
        registry name. Raises `TierlockError` (one line) for a module that cannot be found."""
        return task_file(self.base, task.task)

    def task_ref(self, task: TaskSpec) -> str:
        """The task reference to give Inspect: a file path (absolute) or a registry name."""
        file = self.task_file(task)
        if file is None:
            return task.task
        _, at, name = task.task.partition("@")
        return str(file) + at + name

    def tier(self, name: str) -> TierSpec:
        for t in self.tiers:
            if t.tier == name:
                return t
        raise CampaignError(f"campaign {self.name!r} has no tier {name!r}")

    def digest(self) -> str:
        """SHA-256 of the campaign's content (tiers, tasks, gates); recorded with each run."""
        data = self.model_dump(mode="json")
        for key in ("model_args", "generate_config"):  # added later: left out when empty
            if not data.get(key):
                data.pop(key, None)
        for key, default in _LATER_CAMPAIGN_KEYS.items():  # added later: left out at default
            if data.get(key) == default:
                data.pop(key, None)
        for tier in data["tiers"]:  # keys added later, at their default, are left out: a run
            for key, default in _LATER_TIER_KEYS.items():  # started before keeps its digest
                if tier.get(key) == default:
                    del tier[key]
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
