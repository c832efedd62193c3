"""Jobs: what runs a stored run, here or elsewhere.

``specs``        the builders of job specs (attribution, localisation)
``bodies``       one body per job kind and :func:`bodies.execute_run`, the one execution path
``manager``      :class:`manager.JobManager`: queued jobs on warm local workers or Ray tasks
``worker``       the warm worker process's loop (``python -m beta_core worker --serve``)
``ray_backend``  training runs as Ray tasks, their records relayed back to the store

Here: the job kinds, the backends, and the phase a page shows until a job reports. Import
from the module you need: this package imports nothing, so the manager (and the app's pages)
start without torch.
"""

__all__ = ["JOB_KINDS", "BACKENDS", "DATA_PHASE", "FIRST_PHASE"]

JOB_KINDS = ("train", "surgery", "attribution", "sweep", "localise")  # kinds a job computes (see bodies.JOB_BODIES)
BACKENDS = ("local", "ray")
DATA_PHASE = "preparing data"  # a run's first phase: its data decoded (first time) or read from the cache
# What a job does from its start until it reports more (a page shows it instead of a bare "running").
FIRST_PHASE = {"train": DATA_PHASE, "surgery": "loading the model and the data",
               "attribution": "loading the model, then scoring each group on the errors (gradients, probe)",
               "localise": "loading the model and the data", "sweep": "planning"}

