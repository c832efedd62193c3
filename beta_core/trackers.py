"""Runs other trackers already hold, read by the trackers' own readers: TensorBoard's event
reader, MLflow's client, pandas for a CSV export (W&B's or anyone's). Each run read is a
:class:`Source`: where it came from and its scalars, tag by tag, as (step, value, seconds)
points. Nothing here maps tags to our records (``importer``) or writes a store.

Every reader is bounded: a run's event files of at most ``MAX_EVENT_BYTES`` and a CSV file
of at most ``MAX_CSV_BYTES`` (refused before they are read), at most ``MAX_POINTS`` points a
tag and ``MAX_TAGS`` tags a run; each refusal is one line. TensorBoard and MLflow are
optional extras (``pip install 'beta-core[tensorboard,mlflow]'``); a missing one is one line
naming it.
"""
from __future__ import annotations

import importlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["Source", "read_tensorboard", "read_mlflow", "read_csv", "MAX_POINTS", "MAX_TAGS", "MAX_CSV_BYTES",
           "MAX_EVENT_BYTES",
           "TRACKERS"]

TRACKERS = ("tensorboard", "mlflow", "csv")
MAX_POINTS = 2_000_000   # points a tag: 2,000 epochs of 1,000 logged steps
MAX_TAGS = 2_000
MAX_CSV_BYTES = 512 * 2 ** 20
MAX_EVENT_BYTES = 2 * 2 ** 30  # a run's event files
Points = list  # [(step, value, seconds since the run's first point or None)]


@dataclass
class Source:
    """One run of another tracker: ``key`` names it uniquely (tracker, store, run), so importing
    it twice is seen; ``params`` are its logged hyperparameters, ``status`` how it ended."""
    tracker: str
    location: str
    run: str
    scalars: dict[str, Points]
    params: dict = field(default_factory=dict)
    status: str = "done"

    @property
    def key(self) -> str:
        return f"{self.tracker}:{self.location}:{self.run}"


def _needs(module: str, extra: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"Reading {extra} runs needs {extra}, which is not installed (expected pip install "
                          f"'beta-core[{extra}]')") from None


def _bounded(tag: str, n: int, where: str) -> None:
    if n > MAX_POINTS:
        raise ValueError(f"Refused {where}: tag {tag!r} holds {n:,} points (expected at most {MAX_POINTS:,})")


def _relative(points: list[tuple[float, float, float | None]]) -> Points:
    """Sorted by step, a repeated step keeping its last value (a resumed run logs some twice),
    times from the run's first point; non-finite values stay (a diverged loss is NaN)."""
    by_step = {}
    for s, v, t in points:
        by_step[int(s)] = (float(v), t)
    t0 = min((t for _, t in by_step.values() if t is not None), default=None)
    return [(s, v, None if t is None or t0 is None else t - t0) for s, (v, t) in sorted(by_step.items())]


def read_tensorboard(logdir: str | os.PathLike) -> list[Source]:
    """Every run under ``logdir`` (a folder holding event files is a run, as TensorBoard sees
    it), with its scalars (``add_scalar``) and 0-d tensors (TF2's ``tf.summary.scalar``)."""
    ea = _needs("tensorboard.backend.event_processing.event_accumulator", "tensorboard")
    io = _needs("tensorboard.backend.event_processing.io_wrapper", "tensorboard")
    tensor_util = _needs("tensorboard.util.tensor_util", "tensorboard")
    root = Path(logdir).expanduser().resolve()
    if not root.is_dir():
        raise ValueError(f"No TensorBoard log folder at {str(root)!r} (expected the folder given to SummaryWriter "
                         "or tensorboard --logdir)")
    out = []
    for folder in sorted(io.GetLogdirSubdirectories(str(root))):
        size = sum(f.stat().st_size for f in Path(folder).iterdir() if io.IsTensorFlowEventsFile(str(f)))
        if size > MAX_EVENT_BYTES:
            raise ValueError(f"Refused {folder!r}: {size / 2 ** 30:.1f} GB of event files (expected at most "
                             f"{MAX_EVENT_BYTES / 2 ** 30:.0f} GB a run)")
        acc = ea.EventAccumulator(folder, size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})
        acc.Reload()
        tags = acc.Tags()
        if len(tags.get("scalars", [])) + len(tags.get("tensors", [])) > MAX_TAGS:
            raise ValueError(f"Refused {folder!r}: more than {MAX_TAGS:,} tags (expected a training run's scalars)")
        scalars = {}
        for tag in tags.get("scalars", []):
            events = acc.Scalars(tag)
            _bounded(tag, len(events), folder)
            # event files hold float32: the shortest decimal of that float32 (0.1, not 0.10000000149)
            scalars[tag] = _relative([(e.step, float(str(np.float32(e.value))), e.wall_time) for e in events])
        for tag in tags.get("tensors", []):
            events = acc.Tensors(tag)
            _bounded(tag, len(events), folder)
            values = [(e.step, tensor_util.make_ndarray(e.tensor_proto), e.wall_time) for e in events]
            if values and all(v.ndim == 0 and v.dtype.kind in "fiu" for _, v, _ in values):
                scalars[tag] = _relative([(s, float(v), t) for s, v, t in values])
        if scalars:
            rel = os.path.relpath(folder, root)
            out.append(Source("tensorboard", str(root), "." if rel == "." else rel, scalars))
    if not out:
        raise ValueError(f"No scalars in {str(root)!r} (expected TensorBoard event files, events.out.tfevents.*, "
                         "in it or its subfolders)")
    return out


_MLFLOW_STATUS = {"FINISHED": "done", "FAILED": "failed", "KILLED": "cancelled"}


def read_mlflow(tracking_uri: str | None = None, experiment: str | None = None) -> list[Source]:
    """Every finished, failed or killed run of ``experiment`` (all experiments if None) in the
    MLflow store at ``tracking_uri`` (a folder such as ``./mlruns``, ``file://``, ``http://``;
    default MLflow's own setting), with each metric's full history and the run's params. A
    local folder store is read as it is (MLflow calls that backend "maintenance mode")."""
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or "./mlruns"
    if "://" not in uri:
        folder = Path(uri).expanduser().resolve()
        if not folder.is_dir():
            raise ValueError(f"No MLflow store at {str(folder)!r} (expected a folder such as ./mlruns, or "
                             "--tracking-uri http://HOST:PORT)")
        uri = folder.as_uri()
    if uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # reading what the user already has
    client = _needs("mlflow.tracking", "mlflow").MlflowClient(uri)
    try:
        if experiment is None:
            ids = [e.experiment_id for e in client.search_experiments()]
        else:
            exp = client.get_experiment_by_name(experiment)
            if exp is None:
                names = sorted(e.name for e in client.search_experiments())
                raise ValueError(f"No MLflow experiment {experiment!r} at {uri} (expected one of {names})")
            ids = [exp.experiment_id]
        runs = client.search_runs(ids, max_results=50_000) if ids else []
    except ValueError:
        raise
    except Exception as e:  # noqa: BLE001 - MlflowException, an unreachable server: one line
        raise ValueError(f"Cannot read the MLflow store at {uri}: {str(e).splitlines()[0][:300]}") from None
    out = []
    for run in runs:
        status = _MLFLOW_STATUS.get(run.info.status)
        if status is None:  # RUNNING or SCHEDULED: not finished, read it once it is
            continue
        if len(run.data.metrics) > MAX_TAGS:
            raise ValueError(f"Refused MLflow run {run.info.run_id}: more than {MAX_TAGS:,} metrics")
        scalars = {}
        for key in run.data.metrics:
            history = client.get_metric_history(run.info.run_id, key)
            _bounded(key, len(history), f"MLflow run {run.info.run_id}")
            scalars[key] = _relative([(m.step, m.value, m.timestamp / 1000) for m in history])
        if scalars:
            params = {**run.data.params, "run_name": run.info.run_name or run.info.run_id}
            out.append(Source("mlflow", uri, run.info.run_id, scalars, params, status))
    if not out:
        raise ValueError(f"No finished MLflow runs with metrics at {uri}"
                         + (f" in experiment {experiment!r}" if experiment else ""))
    return out


_STEP_COLUMNS = ("step", "_step", "global_step", "Step", "trainer/global_step", "epoch")
_RUN_COLUMNS = ("run", "run_id", "name", "Name", "run_name")


def read_csv(path: str | os.PathLike) -> list[Source]:
    """A CSV export: one step column (``step``, ``_step``, ``global_step``, ``Step``, or
    ``epoch``) and one column a metric, each row a step; an optional run column (``run``,
    ``run_id``, ``name``) splits it into runs. W&B's chart export (``RUN - METRIC`` columns,
    ``__MIN``/``__MAX`` bands dropped) splits by the part before `` - ``."""
    import pandas as pd

    p = Path(path).expanduser().resolve()
    if not p.is_file():
        raise ValueError(f"No CSV file at {str(p)!r} (expected a CSV export with a step column)")
    if p.stat().st_size > MAX_CSV_BYTES:
        raise ValueError(f"Refused {str(p)!r}: {p.stat().st_size / 2 ** 20:.0f} MB (expected at most "
                         f"{MAX_CSV_BYTES // 2 ** 20} MB)")
    try:
        df = pd.read_csv(p)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
        raise ValueError(f"Cannot read {str(p)!r} as CSV: {str(e).splitlines()[0][:200]}") from None
    step_col = next((c for c in _STEP_COLUMNS if c in df.columns), None)
    if step_col is None:
        raise ValueError(f"No step column in {str(p)!r} (expected one of {', '.join(_STEP_COLUMNS)}; got "
                         f"{', '.join(map(str, df.columns[:12]))})")
    if len(df) > MAX_POINTS:
        raise ValueError(f"Refused {str(p)!r}: {len(df):,} rows (expected at most {MAX_POINTS:,})")
    step = pd.to_numeric(df[step_col], errors="coerce")
    if step.isna().all() or ((step.dropna() % 1) != 0).any():
        raise ValueError(f"Invalid step column {step_col!r} in {str(p)!r} (expected whole numbers: the step of each "
                         "row)")
    df = df.assign(**{step_col: step}).dropna(subset=[step_col])  # a row without a step is no record
    run_col = next((c for c in _RUN_COLUMNS if c in df.columns), None)
    groups = df.groupby(run_col, sort=True) if run_col else [(p.stem, df)]
    out = []
    for run, part in groups:
        per_run: dict[str, dict[str, list]] = {}
        for col in part.columns:
            if col in (step_col, run_col) or col.endswith(("__MIN", "__MAX")) or col.startswith("_"):
                continue
            values = pd.to_numeric(part[col], errors="coerce")
            if values.notna().sum() == 0:
                continue  # a text column (tags, notes): not a scalar
            name, tag = (col.split(" - ", 1) if " - " in col and not run_col else (str(run), col))
            per_run.setdefault(name, {})[tag] = [(s, v, None) for s, v in zip(part[step_col], values)
                                                 if not (isinstance(s, float) and math.isnan(s))
                                                 and not math.isnan(v)]
        for name, scalars in per_run.items():
            if len(scalars) > MAX_TAGS:
                raise ValueError(f"Refused {str(p)!r}: more than {MAX_TAGS:,} columns")
            out.append(Source("csv", str(p), name, {t: _relative(v) for t, v in scalars.items() if v}))
    if not any(s.scalars for s in out):
        raise ValueError(f"No numeric metric columns in {str(p)!r} (expected a step column and metric columns)")
    return [s for s in out if s.scalars]
