"""One schema for every run record that arrives from outside (a bundle's manifest and run.json).

Checked once, before anything is written, with pydantic: types are strict (a seed of ``True``
or ``2**70``, a config that is not a JSON object, a step record with a field that is not ours
are refused), and the first problem is one line naming the member and the field::

    runs/abc/run.json: run.config: expected a JSON object (got '{not json')

The step bound every door shares lives here too (seeds and learning rates: ``fieldtypes``). A row's
config is then checked by what its kind says it is (``bundles``: a ``train`` run's config
builds a ``TrainConfig``, a ``sweep``'s holds a plan), so a forged kind cannot reach a job body.
"""
from __future__ import annotations

import json
import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, create_model, field_validator

from .records import ACTIVE, EPOCH_FIELDS, STATUSES, STEP_FIELDS, TAG

__all__ = ["RecordError", "Manifest", "RunData", "check_manifest", "check_run_data", "JOB_KINDS", "MAX_STEP"]

JOB_KINDS = ("train", "surgery", "attribution", "sweep", "localise", "external", "imported")
MAX_STEP = 10 ** 9     # optimizer steps; beyond any run (ImageNet for 90 epochs: ~450,000)
RunId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")]
Text = Annotated[str, StringConstraints(max_length=100_000)]
_STRICT = ConfigDict(extra="forbid", strict=True)


class RecordError(ValueError):
    """A record from outside that does not fit the schema; the message names member and field."""


def _finite(v: float | None) -> float | None:
    if v is not None and not math.isfinite(v):
        raise ValueError(f"expected a finite number (got {v!r})")
    return v


class Manifest(BaseModel):
    model_config = _STRICT
    format: Literal["beta-core-bundle"]
    version: Literal[1]
    runs: list[RunId] = Field(max_length=100_000)
    checkpoints: bool


def _json_object(text: str | None, optional: bool = False) -> dict | None:
    if text is None and optional:
        return None
    try:
        value = json.loads(text)
    except (TypeError, json.JSONDecodeError):
        raise ValueError(f"expected a JSON object (got {str(text)[:40]!r})") from None
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object (got a {type(value).__name__})")
    return value


class Row(BaseModel):
    """A run's row as ``Store.export_run`` writes it (config and summary as JSON text)."""
    model_config = _STRICT
    id: RunId
    created: float
    updated: float
    status: Literal[tuple(s for s in STATUSES if s not in ACTIVE)]  # a bundle holds finished runs only
    kind: Literal[JOB_KINDS]
    method: Text | None
    model: Text | None
    dataset: Text | None
    label: Text | None
    config: str
    summary: str | None
    parent: RunId | None
    group_id: Text | None
    error: Text | None
    tags: Annotated[str, StringConstraints(max_length=4000)] | None = None  # a JSON list (annotations)
    note: Text | None = None
    name: Annotated[str, StringConstraints(max_length=100)] | None = None

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: str | None) -> str | None:
        tags = json.loads(v) if v is not None else []
        if not isinstance(tags, list) or not all(isinstance(t, str) and TAG.match(t) for t in tags):
            raise ValueError("expected a JSON list of tags (letters, digits, _ . : / + -, up to 40 characters)")
        return v

    @field_validator("created", "updated")
    @classmethod
    def _times(cls, v: float) -> float:
        return _finite(v)

    @field_validator("config")
    @classmethod
    def _config(cls, v: str) -> str:
        _json_object(v)
        return v

    @field_validator("summary")
    @classmethod
    def _summary(cls, v: str | None) -> str | None:
        _json_object(v, optional=True)
        return v


# A diverged run's loss may be NaN: metrics are numbers or empty, not required finite.
_RECORD = ConfigDict(extra="forbid", strict=True)
_Count = Annotated[float, Field(ge=0, le=MAX_STEP, allow_inf_nan=False)]  # REAL in SQLite: 3.0
Step = create_model("Step", __config__=_RECORD, run_id=(RunId | None, None), step=(_Count, ...),
                    **{f: (float | None, None) for f in STEP_FIELDS if f != "step"})
Epoch = create_model("Epoch", __config__=_RECORD, run_id=(RunId | None, None), epoch=(_Count, ...),
                     regime=(Text | None, None), extra=(str | None, None),
                     **{f: (float | None, None) for f in EPOCH_FIELDS if f not in ("epoch", "regime")})


class Result(BaseModel):
    model_config = _STRICT
    kind: Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,40}$")]
    created: float
    data: str

    @field_validator("data")
    @classmethod
    def _data(cls, v: str) -> str:
        try:
            json.loads(v)
        except json.JSONDecodeError:
            raise ValueError(f"expected JSON text (got {v[:40]!r})") from None
        return v


class RunData(BaseModel):
    """What one ``runs/ID/run.json`` of a bundle holds."""
    model_config = _STRICT
    run: Row
    steps: list[Step]
    epochs: list[Epoch]
    results: list[Result]


def _first(e: ValidationError) -> str:
    err = e.errors(include_url=False)[0]
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    msg = err["msg"].removeprefix("Value error, ")  # our own validators already say what they got
    if err["type"] == "value_error":
        return f"{where}: {msg}"
    got = repr(err.get("input"))[:60] if err["type"] != "missing" else "nothing"
    return f"{where}: {msg} (got {got})"


def check_manifest(value, member: str = "manifest.json") -> Manifest:
    try:
        return Manifest.model_validate(value)
    except ValidationError as e:
        raise RecordError(f"{member}: {_first(e)}") from None


def check_run_data(value, member: str) -> RunData:
    """``value`` (parsed JSON) as a valid run record (its config by kind: ``bundles``)."""
    try:
        return RunData.model_validate(value)
    except ValidationError as e:
        raise RecordError(f"{member}: {_first(e)}") from None
