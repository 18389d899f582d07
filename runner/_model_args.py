"""Model arguments and generation settings: parsed like Inspect's CLI, recorded without secrets.

`-M key=value` values are YAML scalars exactly as `inspect eval -M` reads them
(`inspect_ai._util.config.parse_cli_args`: `false` is a bool, `3` an int, `a,b` a list, dashes in
keys become underscores); `--model-config FILE` is a YAML or JSON mapping. Precedence, lowest
first: the campaign's `model_args:`, the `--model-config` file, `-M`. Generation settings
(`--max-retries`, `--timeout`, `--max-connections`, `--max-tokens`, `--temperature` over the
campaign's `generate_config:`) become Inspect's `GenerateConfig`, recorded in the run's first
ledger record. What reaches the ledger goes through `redact`: values of keys that name a
secret (api_key, token, password, secret, authorization...) are `***`, and credentials in URLs
(`https://user:pass@host`, `?api_key=...`) are masked.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import yaml

from tierlock.sandbox import TierlockError
from tierlock.sandbox._errors import display_path
from tierlock.sandbox._userfile import UserFileError, read_text

MASK = "***"
DEFAULT_MAX_RETRIES = 6
"""Retries of one model call when neither the campaign nor the command line says (Inspect's own
default is to retry forever: a dead endpoint would hold the run for hours)."""
DEFAULT_TIMEOUT = 300
"""Seconds one model call may spend, retries included, when nobody says (see above)."""

_SECRET_PARTS = {
    "key", "apikey", "token", "password", "passwd", "pwd", "secret", "credential",
    "credentials", "authorization", "auth", "cookie", "bearer", "signature",
}  # fmt: skip
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")


def parse_model_arg(text: str) -> tuple[str, Any]:
    """One `-M key=value`, as Inspect's CLI reads it; `TierlockError` (one line) when malformed."""
    from inspect_ai._util.config import parse_cli_args

    key, eq, _ = text.partition("=")
    if not eq or not key.strip():
        raise TierlockError(f"-M {text!r}: write key=value")
    try:
        ((k, v),) = parse_cli_args([text]).items()
    except yaml.YAMLError as e:
        reason = " ".join(str(getattr(e, "problem", None) or e).split())
        raise TierlockError(f"-M {text!r}: the value is not a YAML scalar ({reason})") from None
    return k, v


def parse_model_args(values: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """Every `-M` in order (a later key overrides an earlier one, as in Inspect)."""
    return dict(parse_model_arg(v) for v in values)


def read_model_config(path: Path) -> dict[str, Any]:
    """A `--model-config` file: a YAML or JSON mapping of model arguments."""
    where = display_path(path)
    try:
        text = read_text(path, "model config file", max_bytes=1 << 20)
    except UserFileError as e:
        raise TierlockError(str(e)) from None
    try:
        data = yaml.safe_load(text)  # JSON is YAML
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f"{mark.line + 1}:{mark.column + 1}" if mark is not None else "1:1"
        reason = " ".join(str(getattr(e, "problem", None) or e).split())
        raise TierlockError(f"{where}:{at}: not YAML or JSON ({reason})") from None
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise TierlockError(f"{where}:1:1: a model config is a mapping of argument names to values")
    return data


def merged_model_args(
    campaign: dict[str, Any] | None, config_file: Path | None, cli: tuple[str, ...]
) -> dict[str, Any]:
    """Campaign `model_args:`, then the `--model-config` file, then `-M` (last wins)."""
    out = dict(campaign or {})
    if config_file is not None:
        out.update(read_model_config(config_file))
    out.update(parse_model_args(cli))
    return out


def generate_settings(
    campaign: dict[str, Any] | None,
    max_retries: int | None,
    timeout: int | None,
    **cli: Any,
) -> dict[str, Any]:
    """The `GenerateConfig` fields tierlock passes to Inspect: the campaign's `generate_config:`,
    then the command line (`max_retries`, `timeout` and any other `GenerateConfig` field given as
    a keyword: `max_connections`, `max_tokens`, `temperature`; None means not given); retries
    and the per-call time are always bounded."""
    out = {k: v for k, v in (campaign or {}).items() if v is not None}
    given = {"max_retries": max_retries, "timeout": timeout, **cli}
    out.update({k: v for k, v in given.items() if v is not None})
    out.setdefault("max_retries", DEFAULT_MAX_RETRIES)
    out.setdefault("timeout", DEFAULT_TIMEOUT)
    return out


def check_generate_config(value: dict[str, Any]) -> dict[str, Any]:
    """Validate a `generate_config:` mapping against Inspect's `GenerateConfig` (for pydantic)."""
    from inspect_ai.model import GenerateConfig

    unknown = sorted(set(value) - set(GenerateConfig.model_fields))
    if unknown:
        raise ValueError(
            f"unknown generation setting {unknown[0]!r} (Inspect's GenerateConfig fields, "
            "e.g. max_retries, timeout, attempt_timeout, temperature, max_tokens)"
        )
    from pydantic import ValidationError

    try:
        GenerateConfig.model_validate(value)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        raise ValueError(f"{where}: {err['msg']}") from None
    return value


def is_secret_key(key: str) -> bool:
    """Whether an argument or header name names a secret (`api_key`, `x-auth-token`...)."""
    parts = [p for p in re.split(r"[^a-z0-9]+", key.lower()) if p]
    return any(p in _SECRET_PARTS for p in parts) or "apikey" in key.lower().replace("_", "")


def redact_url(text: str) -> str:
    """Credentials in a URL masked: userinfo and secret-named query parameters."""
    text = _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)
    if "?" not in text or "://" not in text:
        return text
    try:
        parts = urlsplit(text)
        query = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:
        return text
    if not any(is_secret_key(k) for k, _ in query):
        return text
    masked = urlencode([(k, MASK if is_secret_key(k) else v) for k, v in query], safe="*")
    return urlunsplit(parts._replace(query=masked))


def redact(value: Any, key: str = "") -> Any:
    """`value` fit for the ledger: secret-named keys masked at any depth, URL credentials masked,
    anything that is not plain data reduced to its type name."""
    if key and is_secret_key(key) and value not in (None, "", {}, []):
        return MASK
    if isinstance(value, dict):
        return {str(k): redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_url(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return f"<{type(value).__name__}>"
