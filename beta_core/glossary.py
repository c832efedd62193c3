"""The words of the product in plain language: one home, read by the pages' ``?`` tooltips, the
README's "Glossary" section (``markdown()``; a test keeps the two equal) and ``beta-core``'s help.

Each entry says what the term means here, for a student who has trained a network but not read
the paper. Keys are short and stable: pages ask for ``term("zeta")``.
"""
from __future__ import annotations

__all__ = ["GLOSSARY", "term", "markdown"]

# key: (the term as written on the pages, its explanation, where it lives in the code)
GLOSSARY: dict[str, tuple[str, str, str]] = {
    "run": (
        "run",
        "One training or surgery run: a config, its records, its checkpoint.",
        'kind `train`, `surgery`'),
    "job": (
        "job",
        "Anything the store runs and tracks: a run, an attribution, a sweep, a localisation benchmark.",
        '`runs` table, `kind`'),
    "sweep": (
        "sweep, cell, member",
        "A planned comparison; one (stage, method, grid point, seed) of it; the run that computed a cell.",
        '`sweeps.Cell`, `parent`'),
    "counted": (
        "counted",
        "A sweep member whose result enters the statistics: `done` or `diverged`.",
        '`sweeps.COUNTED`'),
    "momentum": (
        "momentum μ",
        "How much of the previous step SGD keeps: each update is μ × the previous update plus lr × the "
        "gradient. μ = 0 is plain SGD; μ = 0.9 is the usual default. For Adam: its β₁.",
        '`mu`, `momentum`'),
    "heavy_ball": (
        "heavy ball",
        "SGD with momentum seen as a ball rolling in the loss valley with friction. On a quadratic it is "
        "exactly a damped oscillator, which is where the damping ratio comes from.",
        '`damping.simulate_heavy_ball`'),
    "zeta": (
        "damping ratio ζ",
        "ζ = (1 − μ) / (2√(λ·lr)): how strongly momentum's friction brakes the oscillation. ζ < 1 under-"
        "damped (overshoots and oscillates), ζ = 1 critical (fastest approach without overshoot), ζ > 1 "
        "over-damped (creeps).",
        '`damping.zeta`'),
    "regime": (
        "damping regime",
        "Under-damped (ζ < 1), critical (|ζ − 1| ≤ 0.1) or over-damped (ζ > 1). Training charts shade the"
        " three bands.",
        '`damping.classify`, `DEFAULT_TOL`'),
    "lam": (
        "curvature λ",
        "How sharply the loss bends along a direction (an eigenvalue of the Hessian). The paper's rule "
        "assumes λ = 1; a real network's sharpness can be measured (Train page, 'Curvature each epoch', or "
        "`beta-core curvature`).",
        'config `lam`'),
    "lam_hat": (
        "λ̂",
        "The running sharpness estimate the `beta-measured` rule uses in place of λ = 1.",
        'record `lam_hat`'),
    "sharpness": (
        "sharpness λ_max",
        "The largest Hessian eigenvalue: the curvature of the steepest direction. Heavy ball is stable "
        "only while lr·λ_max < 2(1 + μ).",
        'record `lam_max`'),
    "stability": (
        "stability limit",
        "Heavy ball on curvature λ diverges once lr·λ ≥ 2(1 + μ): the iterates grow instead of shrinking."
        " Charts clip a diverging run and say so.",
        '`stability_margin`'),
    "beta_rule": (
        "beta rule (sgd-beta)",
        "The paper's schedule: μ(t) = 1 − 2√lr(t), the momentum that makes ζ = 1 at every step for λ = 1."
        " It follows the LR schedule, clamped to [0, μ_max].",
        'rule `beta`'),
    "exact_rule": (
        "exact rule",
        "The momentum of the discrete-time analysis (Polyak): μ = (1 − √(lr·λ))², higher than the beta "
        "rule's by lr·λ. Read with the beta rule's ζ formula it sits below 1 (ζ ≈ 0.84 at lr 0.1): the "
        "two analyses disagree most at large LRs.",
        'rule `exact`'),
    "hybrid": (
        "hybrid (sgd-hybrid)",
        "Beta rule while its μ is below the constant μ, then the constant μ: the two lines are identical "
        "until the LR has fallen far (a note on each chart says until which step).",
        'rule `hybrid`'),
    "constant": (
        "constant (sgd-constant)",
        "The usual baseline: one fixed momentum (0.9) for the whole run.",
        'rule `constant`'),
    "onecycle": (
        "one-cycle",
        "Smith's one-cycle policy: LR up then down, momentum down then up (0.95 → 0.85 → 0.95); it keeps "
        "its own LR schedule.",
        'rule `onecycle`'),
    "mu_max": (
        "clamp ceiling μ_max",
        "The largest momentum a rule may set. At tiny LRs the beta rule asks for μ close to 1; the "
        "ceiling keeps it below (the 'clamped' case).",
        '`mu_max`'),
    "eff_lr": (
        "effective step",
        "lr / (1 − μ): how far momentum SGD moves per step in steady state. The beta rule gives √lr / 2, "
        "far below μ = 0.9's 10·lr, so equal LRs are not equal step sizes.",
        '`effective_lr`'),
    "warmup": (
        "warm-up",
        "The first steps of a schedule where the LR rises from near zero to its peak.",
        '`warmup_epochs`'),
    "step": (
        "step",
        "One optimizer update on one batch. Charts count in steps first: a step costs the same for every "
        "SGD method, so steps compare methods fairly where seconds may not.",
        'record `step`'),
    "epoch": (
        "epoch",
        "One pass over the training images. Epochs are counted from 1 everywhere.",
        'record `epoch` (stored from 0)'),
    "wall_clock": (
        "wall-clock seconds",
        "Seconds measured on this machine while the run trained. They depend on what else the machine "
        "did: runs one after another on a busy machine differ by seconds that say nothing about the "
        "method. Compare them only for runs that ran at the same time.",
        'record `time`'),
    "time_to_acc": (
        "time to accuracy",
        "The first step (and epoch, and wall-clock second) at which test accuracy reached a threshold. "
        "'—' means never within the run.",
        '`records.time_to_accuracy`'),
    "censored": (
        "censored",
        "A run that never reached the target within its budget: its time to target is only known to be "
        "longer than the run, so it counts as 'at least the whole run', not as missing.",
        '`censored`'),
    "validation": (
        "validation split",
        "Training images held out for choices (which LR, which epoch). The test split is only for the "
        "final figure, so the choice cannot flatter it.",
        '`val_fraction`'),
    "tuning": (
        "tuning seeds / test seeds",
        "A sweep picks each method's LR on the validation split over tuning seeds, then reruns the chosen"
        " LR on fresh test seeds: the verdict reads only the fresh runs.",
        '`tune_seeds`, `seeds`'),
    "edge_of_grid": (
        "edge of grid",
        "The chosen LR is the smallest or largest tried: the best LR may lie outside the grid, so the "
        "method may be under-tuned. Widen the grid.",
        '`edge`'),
    "interval": (
        "95% interval",
        "The range that holds the true mean difference in 95% of repeated experiments (Student t over "
        "seeds). An interval that crosses 0 means no detectable difference.",
        '`stats`'),
    "speedup": (
        "speedup",
        "Baseline's steps to the target divided by the method's: 1.2 means 20% fewer steps.",
        '`speedup`'),
    "verdict": (
        "verdict",
        "Faster, slower, equivalent (inside the margin, shown by TOST) or no detectable difference (the "
        "interval is too wide to say), from paired seeds.",
        '`verdicts`'),
    "mde": (
        "detectable difference",
        "The smallest difference these seeds could have detected (80% power): a 'no detectable "
        "difference' with a large one means 'too few seeds', not 'the same'.",
        '`mde`'),
    "holm": (
        "Holm correction",
        "Several comparisons at once make a chance 'win' likely; Holm raises each p-value so the family "
        "as a whole keeps the 5% error rate.",
        '`holm`'),
    "layer_group": (
        "layer group",
        "A named block of the model (conv1, layer1, …, fc): the unit that attribution scores and surgery "
        "retrains.",
        '`models.layer_groups`'),
    "attribution": (
        "attribution",
        "Which layer groups are to blame for the misclassified test images, scored from their gradients "
        "(or the probe). The top groups are 'flagged'.",
        '`attribution`'),
    "probe": (
        "probe score",
        "For each group: a few SGD steps on that group alone on the errors, and how much the loss fell. A"
        " negative loss drop means the loss rose. The group whose steps help most is flagged.",
        'score `probe`'),
    "normalization": (
        "normalization",
        "How attribution scores compare groups of different sizes: raw, per parameter, relative "
        "(‖g‖/‖w‖).",
        '`AttributionConfig.normalization`'),
    "normalise": (
        "normalise",
        "Scaling input pixels by the data's mean and std (not attribution's normalization).",
        '`DeviceLoader.normalise`'),
    "relative": (
        "relative gradient",
        "A group's gradient norm divided by its weight norm: comparable between big and small groups, "
        "unlike the raw norm, which favours big groups.",
        'normalization `relative`'),
    "per_param": (
        "per-parameter gradient",
        "A group's gradient norm divided by √(its parameter count).",
        'normalization `per_param`'),
    "flagged": (
        "flagged groups",
        "The groups attribution picks (top k, or z-score above a cut). If they hold most of the "
        "parameters, the diagnosis hardly localises anything.",
        '`flagged`'),
    "jaccard": (
        "Jaccard overlap",
        "Shared flagged groups divided by all flagged groups of two runs: 1 identical, 0 disjoint.",
        '`jaccard`'),
    "surgery": (
        "surgery",
        "Retrain only the flagged groups (the rest frozen) on the errors, then re-check every test image.",
        'kind `surgery`'),
    "fixed_broken": (
        "fixed / broken / net",
        "Test images surgery turned from wrong to right (fixed) and from right to wrong (broken); net = "
        "fixed − broken. A negative net made the model worse.",
        '`surgery_rows`'),
    "controls": (
        "controls",
        "The same retraining with random groups of the same size and with a full fine-tune: surgery is "
        "useful only if it beats them.",
        '`--controls`'),
    "savings": (
        "savings",
        "Parameters (and compute) surgery did not retrain, against a full fine-tune. A saving counts only"
        " when the outcome is as good.",
        '`surgery_rows`'),
    "planted_fault": (
        "planted fault",
        "A group damaged on purpose (weights reset or noised). The localisation benchmark counts how "
        "often attribution finds it: how often the diagnostic is right.",
        '`localise`'),
    "confusion_diff": (
        "confusion difference",
        "Surgery's confusion matrix against the original's, signed so that blue is better everywhere: "
        "more correct on the diagonal, fewer mistakes off it.",
        'the Surgery page'),
}


def term(*keys: str) -> str:
    """The ``?`` text of one or more terms: ``"**damping ratio ζ**: ζ = (1 − μ) / …"``."""
    return "\n\n".join(f"**{GLOSSARY[k][0]}**: {GLOSSARY[k][1]}" for k in keys)


def markdown() -> str:
    """The README's Glossary table, one row per term in this order."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|")
    rows = [f"| {cell(name)} | {cell(text)} | {cell(code)} |" for name, text, code in GLOSSARY.values()]
    return "\n".join(["| term | meaning | in the code |", "|---|---|---|", *rows]) + "\n"
