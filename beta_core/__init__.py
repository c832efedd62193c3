"""beta_core: momentum from critical damping (beta-scheduling) and the diagnostic pipeline built on it.

UI-free: nothing here imports streamlit or prints (except ``cli``, the command line).
Modules: schedules, damping, data, models, engine, store, jobs, attribution, diagnose,
surgery, presets, cli.
"""
__version__ = "0.1.0"
