"""beta_core: momentum from critical damping (beta-scheduling) and the diagnostic pipeline built on it.

UI-free: nothing here imports streamlit; plotly only in ``figures`` and ``html_report`` (figures are
data the pages draw and reports write), and only the CLI prints. Modules, bottom
layer first (README "Architecture"; tests/test_architecture.py checks this list)::

    L0  records, schedules, presets, env, stats, hooks, zoo, provenance, glossary, storebase, trackers, fieldtypes
    L1  damping, schemas, subconfigs, lifecycle, metrics, checkpoints, transfer, mirror, annotations, sysmon, formats
    L2  store, data, models
    L3  config, attribution, curvature, reports, track, verdicts, figures, importer, explorer, timeleft
    L4  engine, sweeps, localise, integrations, integrations.lightning, integrations.hf
    L5  surgery, queries, jobs, jobs.specs, jobs.ray_backend
    L6  bundles, findings, jobs.manager
    L7  cli.stored, html_report, jobs.bodies
    L8  cli.common, cli.imports, jobs.worker, cli.reporting
    L9  cli.diagnostics, cli.sweep, cli.verdict
    L10 cli.commands
    L11 cli
"""
__version__ = "0.1.0"
