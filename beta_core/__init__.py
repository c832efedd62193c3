"""beta_core: momentum from critical damping (beta-scheduling) and the diagnostic pipeline built on it.

UI-free: nothing here imports streamlit; plotly only in ``figures`` and ``report`` (figures are
data the pages draw and reports write), and only the CLI prints. Modules, bottom
layer first (README "Architecture"; tests/test_architecture.py checks this list)::

    L0  records, schedules, presets, env, stats, hooks, zoo, provenance, glossary, storebase, trackers
    L1  damping, data, models, schemas, lifecycle, metrics, checkpoints, transfer, mirror, annotations, sysmon
    L2  store
    L3  config, attribution, curvature, reports, track, verdicts, figures, importer, explorer, timeleft
    L4  engine, sweeps, localise, integrations, integrations.lightning, integrations.hf
    L5  surgery, ray_backend, queries
    L6  jobs, bundles, findings
    L7  cli.stored, report, worker
    L8  cli.common, cli.imports
    L9  cli.diagnostics, cli.sweep, cli.verdict
    L10 cli.commands
    L11 cli
"""
__version__ = "0.1.0"
