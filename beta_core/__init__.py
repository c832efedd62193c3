"""beta_core: momentum from critical damping (beta-scheduling) and the diagnostic pipeline built on it.

UI-free: nothing here imports streamlit; plotly only in ``figures`` and ``report`` (figures are
data the pages draw and reports write), and only the CLI prints. Modules, bottom
layer first (README "Architecture"; tests/test_architecture.py checks this list)::

    L0  records, schedules, presets, env, stats, hooks, zoo, provenance, glossary
    L1  damping, data, models, store, schemas
    L2  config, attribution, curvature, reports, track, verdicts, figures
    L3  engine, sweeps, localise, integrations, integrations.lightning
    L4  surgery, ray_backend, queries
    L5  jobs, bundles, findings
    L6  cli.stored, report, worker
    L7  cli.common
    L8  cli.diagnostics, cli.sweep, cli.verdict
    L9  cli.commands
    L10 cli
"""
__version__ = "0.1.0"
