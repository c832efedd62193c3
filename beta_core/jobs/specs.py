"""One builder per job spec that is not a :class:`config.TrainConfig` (attribution,
localisation), checked before any job exists (the kinds themselves are the package's)."""
from __future__ import annotations

from dataclasses import asdict

from ..attribution import SCORES, AttributionConfig
from ..localise import QUICK_SEVERITIES

__all__ = ["attribution_job", "localise_job"]

def attribution_job(parent: dict, cfg: AttributionConfig) -> dict:
    """What an attribution job of ``parent`` stores as its config (the page and the bundles'
    check read it back as an :class:`AttributionConfig`, so it was valid when it was made)."""
    return {"method": "attribution", "model": parent["config"].get("model"), "attribution": asdict(cfg)}


def localise_job(parent: dict, scores=SCORES, faults=None, seeds=(0,), probe_steps: int = 20) -> dict:
    """What a localisation benchmark of ``parent`` stores as its config: every score and fault
    known, seeds and probe steps whole numbers, checked before any job exists."""
    faults = list(QUICK_SEVERITIES) if faults is None else list(faults)
    bad = [x for x in scores if x not in SCORES] + [x for x in faults if x not in QUICK_SEVERITIES]
    if bad:
        raise ValueError(f"Unknown score or fault: {bad[0]!r} (expected scores {SCORES}, faults "
                         f"{tuple(QUICK_SEVERITIES)})")
    if not isinstance(probe_steps, int) or probe_steps < 1:
        raise ValueError(f"Invalid probe steps: {probe_steps!r} (expected an integer >= 1)")
    return {"method": "localise", "model": parent["config"].get("model"),
            "localise": {"scores": list(scores), "severities": {f: list(QUICK_SEVERITIES[f]) for f in faults},
                         "seeds": list(seeds), "probe_steps": probe_steps}}
