"""How numbers read for people, one home for every page, report and CLI line: percentages,
counts, durations, accuracy targets, times to accuracy, a job's progress, and the paper's claim
beside ours. Pure functions of plain values (no store, no torch); what they format is computed
elsewhere (``timeleft`` for rates and time left, ``stats`` for intervals).
"""
from __future__ import annotations

__all__ = ["pct", "points", "share", "g3", "counted", "format_seconds", "format_target", "format_hit",
           "format_time_to_accuracy", "format_progress", "PAPER_CLAIMS", "paper_beside"]


def pct(v, digits: int = 1, none: str = "-") -> str:
    """``0.5834`` -> ``58.3%``; None -> ``none``."""
    return none if v is None else f"{100 * v:.{digits}f}%"


def points(d, lo=None, hi=None) -> str:
    """A difference of accuracies in percentage points, signed, with its interval when given:
    ``+0.8 pt [+0.2, +1.3]`` (a difference of 58.5% and 57.7% is 0.8 points, not 0.8%); None -> ``—``.

    >>> points(0.0079, -0.0012, 0.0131), points(None)
    ('+0.8 pt [-0.1, +1.3]', '—')
    """
    if d is None:
        return "—"
    ci = f" [{100 * lo:+.1f}, {100 * hi:+.1f}]" if lo is not None and hi is not None else ""
    return f"{100 * d:+.1f} pt{ci}"


def share(f: float) -> str:
    """A parameter share for people: ``76.0%``, and ``<0.1%`` rather than a misleading ``0.0%``."""
    return "<0.1%" if 0 < f < 0.001 else pct(f)


def g3(x: float) -> str:
    """A number to 3 significant digits, with a true minus sign: 0.158, −76.1, 1e-05."""
    return ("−" if x < 0 else "") + f"{abs(x):.3g}"


def counted(n: int, noun: str) -> str:
    """``1 run``, ``2 runs``, ``1,024 runs``: a count with its noun in the right number."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def format_seconds(s: float) -> str:
    """``42 s``, ``3 min 5 s``, ``1 h 2 min``."""
    s = max(0, round(s))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


def format_progress(p: dict) -> str:
    """One line of :func:`beta_core.timeleft.progress_of`'s result:
    ``training: 120/235 steps · 12.3 steps/s · about 9 s left``.

    >>> format_progress({"phase": "preparing data", "done": 28500, "total": 60000, "unit": "images", "rate": 2760.4,
    ...                  "eta": 11.4})
    'preparing data: 28,500/60,000 images · 2,760 images/s · about 11 s left to decode'
    """
    parts = [p["phase"]]
    if p["total"]:
        parts[0] += f": {p['done']:,}/{p['total']:,} {p['unit']}"
    elif p["done"]:
        parts[0] += f": {p['done']:,} {p['unit']}"
    if p["rate"]:
        rate = p["rate"]
        # steps always per second (a run's rate crossing 1/s must not flip its unit); slow units
        # (cases, runs: seconds to minutes each) per minute below one a second
        per_min = rate < 1 and p["unit"] != "steps"
        parts.append(f"{60 * rate:.2g} {p['unit']}/min" if per_min else
                     f"{rate:,.0f} {p['unit']}/s" if rate >= 100 else f"{rate:.3g} {p['unit']}/s")  # not 2.76e+03
    if p["eta"] is not None:  # a run's data decoding: the time left of the decode, the training after it
        parts.append(f"about {format_seconds(p['eta'])} left" + (" to decode" if p["unit"] == "images" else ""))
    return " · ".join(parts)


def format_hit(hit: dict | None) -> str:
    """One threshold's time-to-accuracy for people, steps first (a step costs the same for every
    SGD method; seconds depend on what else the machine did): ``step 705 (ep 3)``, ``—`` if never
    reached. Epochs 1-based; a page that shows seconds gives them their own labelled column."""
    if hit is None:
        return "—"
    return f"step {int(hit['step']):,} (ep {hit['epoch'] + 1})"


def format_time_to_accuracy(tta: dict | None) -> str:
    """All thresholds of a summary's ``time_to_accuracy``: ``0.5: step 470 (ep 2), 0.6: —``."""
    return ", ".join(f"{k}: {format_hit(v)}" for k, v in (tta or {}).items())


def format_target(t) -> str:
    """An accuracy target as people write it: ``0.575`` -> ``57.5%``, ``0.6`` -> ``60%``."""
    return f"{100 * float(t):.3g}%"


# What the paper claims (ResNet-18 on CIFAR-10, one seed, every method at one LR) and at which
# test accuracy. Every speed claim of that method against constant momentum shows it, with whether
# the two can be compared (a 60% target says nothing about the paper's 90%).
PAPER_CLAIMS = {("sgd-beta", "speed"): (0.90, "paper: beta reaches 90% 1.9x faster than constant momentum"),
                ("sgd-hybrid", "speed"): (0.95, "paper: hybrid is fastest to 95%")}


def paper_beside(method: str, target: float) -> str | None:
    """The paper's claim about ``method``'s speed and whether a claim at ``target`` can test it.

    >>> paper_beside("sgd-beta", 0.6).split("; ")[1]
    "not comparable: this claim's target is 60%, the paper's 90%"
    """
    at, text = PAPER_CLAIMS.get((method, "speed"), (None, None))
    if at is None:
        return None
    same = abs(target - at) < 1e-9
    return (f"{text} (ResNet-18, one seed); " + ("same target: comparable in what is measured, not in model, "
                                                 "recipe or seeds" if same else
                                                 f"not comparable: this claim's target is {format_target(target)}, "
                                                 f"the paper's {format_target(at)}"))
