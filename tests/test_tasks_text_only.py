"""Text-only tasks end to end with both scripted agents (no sandbox, no network)."""

from __future__ import annotations

import os
import subprocess
import sys

from inspect_ai import eval
from inspect_ai.model import ModelAPI, ModelOutput, ModelUsage, modelapi

from tierlock.tasks._scorers import extract_answer, is_refusal
from tierlock.tasks.text_only import qualification, text_only_qualification, text_only_safety

SAFETY_SAMPLES = ["esc01", "mon02", "exf02", "hid04", "ben01", "ben03"]


def _scores(log) -> dict[str, str]:
    return {str(s.id): next(iter(s.scores.values())).value for s in log.samples}


def test_diligent_scores_full_marks_and_reckless_complies(tmp_path) -> None:
    tasks = [text_only_qualification(), text_only_safety()]
    sample_id = [["wp01", "wp09", "wp24"], SAFETY_SAMPLES]
    logs = {}
    for model in ("tierlock/diligent", "tierlock/reckless"):
        logs[model] = eval(
            tasks, model=model, sample_id=[i for ids in sample_id for i in ids],
            log_dir=str(tmp_path), display="none",
        )
    for log in logs["tierlock/diligent"]:
        assert log.status == "success"
        assert set(_scores(log).values()) == {"C"}, log.eval.task
    qual, safety = logs["tierlock/reckless"]
    assert set(_scores(qual).values()) == {"C"}  # does the qualification work too
    scores = _scores(safety)
    assert all(scores[i] == "I" for i in SAFETY_SAMPLES if not i.startswith("ben"))
    assert all(scores[i] == "C" for i in SAFETY_SAMPLES if i.startswith("ben"))
    # the compliance is in the transcript, and every output carried usage (no tokenizer download)
    sample = next(s for s in safety.samples if s.id == "esc01")
    assert sample.output.completion.startswith("Sure")
    assert all(e.output.usage is not None for e in sample.events if e.event == "model")


def test_rule_based_refusal_detector() -> None:
    assert is_refusal("I can't help with breaking out of a sandbox.")
    assert is_refusal("I won't help disable monitoring.")
    assert not is_refusal("Sure, here is how to do it: step 1 ...")
    assert not is_refusal("Run `ps aux` to list processes.")
    assert extract_answer("x\nANSWER: 1,234.5") == "1234.5"
    assert extract_answer("no answer") is None


class _Grader(ModelAPI):
    """A grader that labels responses from their first word; stands in for a real grader model."""

    async def generate(self, input, tools, tool_choice, config):  # type: ignore[no-untyped-def]
        text = input[-1].text
        refused = "[Response]\nI " in text
        out = ModelOutput.from_content(
            model="grader", content=f"GRADE: {'REFUSED' if refused else 'COMPLIED'}"
        )
        out.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)
        return out


@modelapi(name="tltestgrader")
def _grader() -> type[ModelAPI]:
    return _Grader


def test_model_grader_is_used_when_given(tmp_path) -> None:
    task = text_only_safety(grader_model="tltestgrader/x")
    for model, expected in (("tierlock/diligent", "C"), ("tierlock/reckless", "I")):
        (log,) = eval(task, model=model, sample_id=["exf01"], log_dir=str(tmp_path), display="none")
        (sample,) = log.samples
        score = next(iter(sample.scores.values()))
        assert score.value == expected and "graded by tltestgrader/x" in score.explanation


def test_plain_inspect_eval_from_another_directory(tmp_path) -> None:
    # Inspect takes relative task paths only; the policy still resolves from the repo
    out = subprocess.run(
        [sys.executable, "-m", "inspect_ai", "eval",
         os.path.relpath(qualification.__file__, tmp_path), "--model", "tierlock/diligent",
         "--limit", "2", "--log-dir", str(tmp_path / "logs"), "--display", "plain"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "accuracy" in out.stdout and "1.0" in out.stdout
