"""The runs explorer's questions, answered in the store's SQL: which columns a run has, which
runs a filter keeps, in which order, and per group the mean and interval of a metric.

A *field* is a run's column (``id``, ``name``, ``status``, ``kind``, ``method``, ``model``,
``created``, ``note``, ``tags``, ``host``), a summary metric (``final_test_acc``,
``wall_seconds``, ``steps_to_0.9``, ...) or any config field (``lr``, ``seed``, ``epochs``,
...; a surgery run's are its training config's). A *filter* is ``FIELD OP VALUE`` expressions
joined by ``;``, a new line or ``and``; OP is one of ``= != > >= < <= ~`` (contains) ``in`` and
``not in`` (comma-separated values): ``lr > 0.05; method in sgd-beta,sgd-hybrid; tag =
lecture``. Every name becomes a whitelisted SQL expression and every value a bound parameter,
so a filter from a URL or a page is data, never SQL. A bad expression is one ValueError.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import t as t_dist

from .records import SYSTEM
from .stats import LEVEL, mean_ci
from .store import Store

__all__ = ["Page", "DEFAULT_COLUMNS", "default_columns", "METRICS", "fields", "parse_filter", "query", "group_stats",
           "group_curves", "smoothed", "label", "system_records"]

_ROW = {"id": "id", "name": "name", "label": "label", "status": "status", "kind": "kind", "method": "method",
        "model": "model", "dataset": "dataset", "created": "created", "parent": "parent", "group": "group_id",
        "note": "note", "tags": "tags"}
METRICS = ("final_test_acc", "best_test_acc", "final_val_acc", "best_val_acc", "wall_seconds", "epochs_completed",
           "total_steps", "steps_per_epoch", "acc_after", "net")
_SUMMARY_PATHS = {"host": "$.environment.host", "device": "$.device", "data": "$.data"}
# Metrics first, so they are on screen at 1280 px; then the settings; every target's steps.
DEFAULT_COLUMNS = ("name", "method", "final_test_acc", "best_test_acc", "steps_to_*", "lr", "seed", "epochs", "model",
                   "data", "status", "created")
_IDENT = re.compile(r"^[A-Za-z_][\w.]*$")
_TARGET = re.compile(r"^steps_to_(0(\.\d+)?|1(\.0+)?)$")
_EXPR = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(not\s+in\b|in\b|!=|>=|<=|=|>|<|~)\s*(.*?)\s*$", re.I)
_SPLIT = re.compile(r";|\n|\s+and\s+", re.I)


def label(field: str) -> str:
    """A column's heading: ``final_test_acc`` -> ``final test acc``, targets in percent."""
    m = _TARGET.match(field)
    return f"steps to {float(m.group(1)):.0%}" if m else field.replace("_", " ")


def _sql(field: str, have: frozenset = frozenset(_ROW.values())) -> str:
    """The SQL expression of a field (only names that pass _IDENT reach the JSON paths); a row
    column the store lacks (an old store read without migrating: no tags) reads as empty."""
    if field in _ROW:
        return _ROW[field] if _ROW[field] in have else "NULL"
    if field in _SUMMARY_PATHS:
        return f"json_extract(summary, '{_SUMMARY_PATHS[field]}')"
    if field in METRICS:
        return f"json_extract(summary, '$.{field}')"
    if (m := _TARGET.match(field)) is not None:
        return f"json_extract(summary, '$.time_to_accuracy.\"{float(m.group(1)):g}\".step')"
    if not _IDENT.match(field) or field == "tag":
        raise ValueError(f"Invalid field {field!r}")
    path = "".join(f'."{p}"' for p in field.split("."))
    return f"COALESCE(json_extract(config, '${path}'), json_extract(config, '$.train{path}'))"


def default_columns(known: list[str]) -> list[str]:
    """:data:`DEFAULT_COLUMNS` this store has, ``steps_to_*`` standing for its targets (at most 3)."""
    targets = [f for f in known if f.startswith("steps_to_")][:3]
    return [c for d in DEFAULT_COLUMNS for c in (targets if d == "steps_to_*" else [d]) if c in known]


def fields(store: Store) -> list[str]:
    """Every field a run of this store has: row columns, metrics, targets, config fields (from
    the newest 1,000 runs: the store's own names, not a fixed list)."""
    with store.reading() as db:
        keys = [r[0] for r in db.execute(
            "SELECT DISTINCT j.key FROM (SELECT config FROM runs ORDER BY created DESC LIMIT 1000) r, "
            "json_each(r.config) j WHERE j.type NOT IN ('object', 'array')")]
        targets = [r[0] for r in db.execute(
            "SELECT DISTINCT j.key FROM (SELECT summary FROM runs ORDER BY created DESC LIMIT 1000) r, "
            "json_each(r.summary, '$.time_to_accuracy') j")]
    config = sorted(k for k in keys if _IDENT.match(k) and k not in _ROW and k not in METRICS)
    steps = [f"steps_to_{t}" for t in sorted(targets, key=float) if _TARGET.match(f"steps_to_{t}")]
    return [*_ROW, *METRICS, *steps, *_SUMMARY_PATHS, *config]


def _value(text: str):
    text = text.strip().strip("'\"")
    try:
        return float(text)
    except ValueError:
        return text


def parse_filter(text: str | None, known: list[str] | None = None,
                 have: frozenset = frozenset(_ROW.values())) -> tuple[str, list]:
    """(SQL condition, parameters) of a filter; ``known`` fields (:func:`fields`) catch a typo.

    >>> parse_filter("lr > 0.05; method in sgd-beta,sgd-hybrid")[1]
    [0.05, 'sgd-beta', 'sgd-hybrid']
    """
    where, args = [], []
    for part in filter(None, (p.strip() for p in _SPLIT.split(text or ""))):
        m = _EXPR.match(part)
        if not m or not m.group(3):
            raise ValueError(f"Invalid filter {part!r} (expected FIELD OP VALUE with OP one of = != > >= < <= ~ in, "
                             "e.g. lr > 0.05, method in sgd-beta,sgd-hybrid, tag = lecture)")
        name, op, raw = m.group(1), re.sub(r"\s+", " ", m.group(2).lower()), m.group(3)
        if name in ("tag", "tags"):
            values = [v.strip(chr(39) + chr(34) + " ") for v in (raw.split(",") if op in ("in", "not in") else [raw])]
            if op not in ("=", "!=", "in", "not in", "~"):
                raise ValueError(f"Invalid filter {part!r} (expected tag = NAME, tag != NAME, tag in A,B or "
                                 "tag ~ TEXT)")
            cond = "value LIKE ?" if op == "~" else f"value IN ({', '.join('?' * len(values))})"
            neg = "NOT " if op in ("!=", "not in") else ""
            tags = "tags" if "tags" in have else "NULL"
            where.append(f"{neg}EXISTS (SELECT 1 FROM json_each(COALESCE({tags}, '[]')) WHERE {cond})")
            args += [f"%{values[0]}%"] if op == "~" else values  # a tag is text: "2024" stays "2024"
            continue
        if known is not None and name not in known:
            close = [k for k in known if name.lower() in k.lower() or k.lower() in name.lower()][:5]
            raise ValueError(f"Unknown field {name!r} in filter {part!r} (expected a run's field"
                             + (f", e.g. {', '.join(close)}" if close else "; the column picker lists them") + ")")
        expr = _sql(name, have)
        if op in ("in", "not in"):
            values = [_value(v) for v in raw.split(",") if v.strip()]
            neg = "NOT " if op == "not in" else ""
            where.append(f"({expr} {neg}IN ({', '.join('?' * len(values))})"
                         + (f" OR {expr} IS NULL)" if neg else ")"))
            args += values
        elif op == "~":
            where.append(f"CAST({expr} AS TEXT) LIKE ?")
            args.append(f"%{raw.strip(chr(39) + chr(34) + ' ')}%")  # text as typed: "000042", not 42.0
        elif op == "!=":
            where.append(f"({expr} IS NULL OR {expr} != ?)")
            args.append(_value(raw))
        else:
            value = _value(raw)
            if op != "=" and not isinstance(value, float):
                raise ValueError(f"Invalid filter {part!r} (expected a number after {op})")
            where.append(f"{expr} {op} ?")
            args.append(value)
    return " AND ".join(where), args


@dataclass
class Page:
    """One page of runs: ``frame`` (one row a run, the asked columns plus ``id``), ``total``
    (runs the filter keeps), ``ids`` (every kept id when asked: for groups and charts)."""
    frame: pd.DataFrame
    total: int


def query(store: Store, filters: str | None = None, sort: str = "created", descending: bool = True,
          columns=(), limit: int = 100, offset: int = 0, kinds: tuple | None = None,
          known: list[str] | None = None) -> Page:
    """The runs ``filters`` keeps, sorted by any field (empty values last), one page of them."""
    cond, args = parse_filter(filters, known, store.columns)
    if kinds:
        cond = " AND ".join(filter(None, [cond, f"kind IN ({', '.join('?' * len(kinds))})"]))
        args = [*args, *kinds]
    where = f" WHERE {cond}" if cond else ""
    key = _sql(sort, store.columns)
    order = f" ORDER BY ({key}) IS NULL, {key} {'DESC' if descending else 'ASC'}, created DESC, id DESC"
    cols = [c for c in dict.fromkeys(("id", *columns))]
    select = ", ".join(f'{_sql(c, store.columns)} AS "{c}"' for c in cols)
    with store.reading() as db:
        total = db.execute(f"SELECT COUNT(*) FROM runs{where}", args).fetchone()[0]
        ids = [r[0] for r in db.execute(f"SELECT id FROM runs{where}{order} LIMIT ? OFFSET ?",
                                        [*args, int(limit), int(offset)])]
        rows = {r["id"]: dict(r) for r in db.execute(
            f"SELECT {select} FROM runs WHERE id IN ({', '.join('?' * len(ids))})", ids)} if ids else {}
    frame = pd.DataFrame([rows[i] for i in ids], columns=cols)
    if "created" in frame:
        frame["created"] = pd.to_datetime(frame["created"], unit="s")
    return Page(frame, total)


def _is_accuracy(metric: str) -> bool:
    return metric.endswith(("acc", "acc_after"))


# What makes runs different experiments, not seeds of one: a group that mixes values of these
# pools settings, and its interval is no seed interval (the Runs page says so).
SETTINGS = ("model", "width", "widths", "resize", "data", "dataset", "train_subset", "test_subset", "epochs",
            "batch_size", "lr", "optimizer", "momentum_rule", "mu", "hybrid_switch", "nesterov", "weight_decay",
            "lr_schedule", "warmup_epochs", "label_smoothing", "planted_fault")


def group_stats(store: Store, filters: str | None, by: str, metric: str, kinds: tuple | None = None,
                known: list[str] | None = None) -> pd.DataFrame:
    """Per value of ``by`` over every run the filter keeps: n, mean and the 95% t interval of
    ``metric`` (an accuracy's interval stays in [0, 1]; ``clipped`` says when it was cut), and
    which :data:`SETTINGS` its runs with the metric differ in (``pools``: "" when none)."""
    cond, args = parse_filter(filters, known, store.columns)
    if kinds:
        cond = " AND ".join(filter(None, [cond, f"kind IN ({', '.join('?' * len(kinds))})"]))
        args = [*args, *kinds]
    where = f" WHERE {cond}" if cond else ""
    settings = [f for f in SETTINGS if f != by]
    with store.reading() as db:
        rows = db.execute(f'SELECT {_sql(by, store.columns)} AS g, {_sql(metric, store.columns)} AS m, '
                          + ", ".join(_sql(f, store.columns) for f in settings) + f' FROM runs{where}', args).fetchall()
    df = pd.DataFrame([tuple(r) for r in rows], columns=["group", "value", *settings])
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    out = []
    for g, part in df.groupby(df["group"].astype(str), sort=True):
        st = mean_ci(part["value"].dropna().tolist(), bounds=(0, 1) if _is_accuracy(metric) else None)
        counted = part.dropna(subset=["value"])
        pools = [f for f in settings if counted[f].nunique(dropna=False) > 1]  # a field one run lacks differs too
        out.append({by: g, "runs": len(part), "n": st["n"], "mean": st["mean"], "ci_low": st["ci_low"],
                    "ci_high": st["ci_high"], "clipped": st["clipped"], "pools": ", ".join(pools)})
    return pd.DataFrame(out, columns=[by, "runs", "n", "mean", "ci_low", "ci_high", "clipped", "pools"])


def system_records(store: Store, ids: list[str]) -> pd.DataFrame:
    """The machine while each run trained (``sysmon`` samples), one row a sample."""
    rows = [{"run_id": i, **s} for i in ids for s in store.results(i, SYSTEM)]
    cols = ["run_id", "time", "cpu_process", "cpu_machine", "rss_mb", "mem_used_mb", "gpu_mem_mb", "gpu_util"]
    return pd.DataFrame(rows, columns=list(dict.fromkeys([*cols, *(k for r in rows for k in r)])))


def smoothed(frame: pd.DataFrame, metric: str, window: int) -> pd.DataFrame:
    """Each run's ``metric`` as a trailing mean over ``window`` records (1: as logged)."""
    if window <= 1 or frame.empty:
        return frame
    return frame.assign(**{metric: frame.groupby("run_id")[metric].transform(
        lambda s: s.rolling(window, min_periods=1).mean())})


def group_curves(records: pd.DataFrame, group_of_run: dict[str, str], x: str, metric: str) -> pd.DataFrame:
    """Per group and ``x`` (step or epoch): the mean of ``metric`` over runs with its 95%
    interval (bounded for an accuracy) and n; the columns of ``figures.mean_curve_figure``."""
    cols = ["arm", x, "mean", "ci_low", "ci_high", "n"]
    if records.empty or metric not in records:
        return pd.DataFrame(columns=cols)
    df = records[records["run_id"].isin(list(group_of_run))].assign(arm=lambda d: d["run_id"].map(group_of_run))
    # mean_ci's t interval, computed for every point at once (a chart has thousands of points)
    g = df.dropna(subset=[metric]).groupby(["arm", x])[metric].agg(["mean", "std", "count"]).reset_index()
    n = g["count"].to_numpy()
    half = t_dist.ppf(0.5 + LEVEL / 2, np.maximum(n - 1, 1)) * g["std"].to_numpy() / np.sqrt(n)
    half = np.where(n > 1, np.nan_to_num(half), np.nan)
    low, high = g["mean"].to_numpy() - half, g["mean"].to_numpy() + half
    if _is_accuracy(metric):
        low, high = np.clip(low, 0, 1), np.clip(high, 0, 1)
    return pd.DataFrame({"arm": g["arm"], x: g[x], "mean": g["mean"], "ci_low": low, "ci_high": high, "n": n},
                        columns=cols)
