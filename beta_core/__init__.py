"""beta_core: momentum from critical damping (beta-scheduling) and the diagnostic pipeline built on it.

UI-free: nothing here imports streamlit or plotly, and only the CLI prints. Modules, bottom
layer first (README "Architecture"): records, schedules, presets, env; damping, data, models,
store; config, attribution; engine; surgery; jobs; cli_common, cli_diagnostics, cli.
"""
__version__ = "0.1.0"
