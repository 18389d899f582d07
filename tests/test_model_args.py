"""Model arguments typed like Inspect's: `-M`, `--model-config`, a campaign's `model_args:`;
generation settings; what the ledger records of them (never a secret)."""

from __future__ import annotations

import io
import json
import os
import re
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest

from tests._fault_server import FaultServer, script_brain
from tierlock.runner import Ledger
from tierlock.runner._campaign import CampaignError
from tierlock.runner._campaign_file import load_campaign
from tierlock.runner._model_args import (
    DEFAULT_MAX_RETRIES,
    generate_settings,
    merged_model_args,
    parse_model_args,
    redact,
)
from tierlock.runner.cli import main
from tierlock.sandbox import TierlockError
from tierlock.tasks._contract import SampleContract

ROOT = Path(__file__).resolve().parent.parent
CAMPAIGN = f"""\
name: model-args
tiers:
  - tier: text-only
    policy: {ROOT}/policies/text-only.yaml
    tasks:
      - task: {ROOT}/tasks/text_only/qualification.py@text_only_qualification
        kind: qualification
        thresholds: ["accuracy >= 0.9"]
"""


def test_values_are_yaml_scalars_as_in_inspect() -> None:
    from inspect_ai._util.config import parse_cli_args

    argv = ["responses_api=false", "n=3", "t=0.5", "s=hello", "l=a,b", "dash-key=on", "e="]
    ours = parse_model_args(argv)
    assert ours == parse_cli_args(argv)  # exactly what `inspect eval -M` gives
    assert ours["responses_api"] is False and ours["n"] == 3 and ours["t"] == 0.5
    assert ours["l"] == ["a", "b"] and ours["dash_key"] is True and ours["e"] is None


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("junk", "-M 'junk': write key=value"),
        ("=1", "-M '=1': write key=value"),
        ("x=[1, 2", "-M 'x=[1, 2': the value is not a YAML scalar"),
    ],
)
def test_malformed_values_are_one_line_errors(arg: str, message: str) -> None:
    with pytest.raises(TierlockError) as e:
        parse_model_args([arg])
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_campaign_then_file_then_command_line(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text("temperature_scale: 2\nresponses_api: true\nx: file\n")
    (tmp_path / "m.json").write_text(json.dumps({"responses_api": True, "y": 1}))
    campaign = {"responses_api": True, "x": "campaign", "z": "campaign"}
    got = merged_model_args(campaign, tmp_path / "m.yaml", ("responses_api=false",))
    assert got == {"responses_api": False, "x": "file", "z": "campaign", "temperature_scale": 2}
    assert merged_model_args(None, tmp_path / "m.json", ()) == {"responses_api": True, "y": 1}


def test_a_model_config_that_is_not_a_mapping_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    (tmp_path / "broken.yaml").write_text("a: [1,\n")
    with pytest.raises(TierlockError, match=r"list\.yaml:1:1: a model config is a mapping"):
        merged_model_args(None, tmp_path / "list.yaml", ())
    with pytest.raises(TierlockError, match=r"broken\.yaml:\d+:\d+: not YAML or JSON"):
        merged_model_args(None, tmp_path / "broken.yaml", ())


def test_generation_settings_are_always_bounded() -> None:
    assert generate_settings(None, None, None)["max_retries"] == DEFAULT_MAX_RETRIES
    got = generate_settings({"max_retries": 9, "temperature": 0.0}, None, 30)
    assert got == {"max_retries": 9, "temperature": 0.0, "timeout": 30}
    assert generate_settings({"max_retries": 9}, 1, None)["max_retries"] == 1


def test_campaign_model_args_and_generate_config(tmp_path: Path) -> None:
    path = tmp_path / "c.campaign.yaml"
    path.write_text(CAMPAIGN + "model_args: {responses_api: false}\n"
                    "generate_config: {max_retries: 3, timeout: 60}\n")  # fmt: skip
    camp = load_campaign(path)
    assert camp.model_args == {"responses_api": False}
    assert camp.generate_config == {"max_retries": 3, "timeout": 60}
    plain = tmp_path / "p.campaign.yaml"
    plain.write_text(CAMPAIGN)
    assert load_campaign(plain).digest() != camp.digest()
    path.write_text(CAMPAIGN + "generate_config: {max_retires: 3}\n")
    with pytest.raises(CampaignError) as e:
        load_campaign(path)
    said = "\n".join(e.value.lines())
    assert re.search(r"c\.campaign\.yaml:9:\d+: generate_config: unknown .*'max_retires'", said)


def test_secrets_are_masked_at_any_depth() -> None:
    args = {
        "api_key": "sk-live-123",
        "base_url": "https://alice:hunter2@llm.example/v1?api-key=abc&region=eu",
        "default_headers": {"Authorization": "Bearer xyz", "X-Team": "evals"},
        "aws_secret_access_key": "s",
        "max_tokens": 100,
        "responses_api": False,
        "http_client": object(),
    }
    got = redact(args)
    text = json.dumps(got)
    for secret in ("sk-live-123", "hunter2", "alice", "abc", "xyz"):
        assert secret not in text
    assert got["base_url"] == "https://***@llm.example/v1?api-key=***&region=eu"
    assert got["default_headers"] == {"Authorization": "***", "X-Team": "evals"}
    assert got["max_tokens"] == 100 and got["responses_api"] is False
    assert got["http_client"] == "<object>"


# -- end to end --------------------------------------------------------------------------------
SEEN: list[dict[str, Any]] = []


def _register_probe() -> None:
    """`h13probe/NAME`: a model provider that records the arguments it was built with."""
    from inspect_ai.model import GenerateConfig, ModelAPI, ModelOutput, ModelUsage, modelapi

    @modelapi(name="h13probe")
    def _probe() -> type[ModelAPI]:
        class Probe(ModelAPI):
            def __init__(
                self, model_name: str, base_url: str | None = None,
                api_key: str | None = None, config: GenerateConfig | None = None,
                **model_args: Any,
            ) -> None:  # fmt: skip
                super().__init__(model_name, base_url, api_key, [], config or GenerateConfig())
                SEEN.append(dict(model_args))

            async def generate(self, input: Any, tools: Any, tool_choice: Any, config: Any) -> Any:
                out = ModelOutput.from_content(self.model_name, "ANSWER: 0")
                out.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)
                return out

        return Probe


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with (
        patch.object(sys, "argv", ["tierlock", *argv]),
        redirect_stdout(out),
        redirect_stderr(err),
        pytest.raises(SystemExit) as exit_,
    ):
        main()
    return int(exit_.value.code or 0), out.getvalue(), err.getvalue()


def test_M_false_reaches_the_provider_as_False_and_the_ledger_records_it(tmp_path: Path) -> None:
    _register_probe()
    campaign = tmp_path / "c.campaign.yaml"
    campaign.write_text(CAMPAIGN)
    runs = tmp_path / "runs"
    code, out, err = run_cli(
        "run", str(campaign), "--model", "h13probe/x", "--runs-dir", str(runs),
        "-M", "responses_api=false", "-M", "api_key=sk-secret", "--max-retries", "4",
    )  # fmt: skip
    assert code == 5, out + err  # the probe answers 0: not qualified, but it ran
    built = [s for s in SEEN if "responses_api" in s]  # Inspect may also build it bare
    assert built and all(s["responses_api"] is False for s in built), SEEN
    with Ledger(runs / "ledger.sqlite") as ledger:
        started = next(r for r in ledger.records() if r.kind == "run_started")
    assert started.payload["model_args"] == {"responses_api": False, "api_key": "***"}
    assert started.payload["generate_config"]["max_retries"] == 4
    assert "sk-secret" not in json.dumps(started.payload)


@pytest.mark.parametrize(("flag", "route"), [("false", "/v1/chat/completions"),
                                              ("true", "/v1/responses")])  # fmt: skip
def test_responses_api_flag_picks_the_route(tmp_path: Path, flag: str, route: str) -> None:
    from tierlock.tasks.text_only import qualification

    scripts = {}
    for sample in qualification.dataset():
        contract = SampleContract.of(sample.metadata)
        assert contract is not None
        scripts[str(sample.input).strip()] = contract.solution
    campaign = tmp_path / "c.campaign.yaml"
    campaign.write_text(CAMPAIGN)
    with FaultServer(script_brain(scripts)) as server:
        env = {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "test"}
        with patch.dict(os.environ, env):
            code, out, err = run_cli(
                "run", str(campaign), "--model", "openai/fault-model",
                "--runs-dir", str(tmp_path / "runs"), "-M", f"responses_api={flag}",
            )  # fmt: skip
    assert code == 0, out + err
    assert set(server.calls) == {route}, server.calls
