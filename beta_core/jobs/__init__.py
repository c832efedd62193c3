"""Jobs: what runs a stored run, here or elsewhere.

``specs``        job kinds, backends, and the builders of job specs (attribution, localisation)
``bodies``       one body per job kind and :func:`bodies.execute_run`, the one execution path
``manager``      :class:`manager.JobManager`: queued jobs on warm local workers or Ray tasks
``worker``       the warm worker process's loop (``python -m beta_core worker --serve``)
``ray_backend``  training runs as Ray tasks, their records relayed back to the store

Import from the module you need: this package imports nothing, so reading what a job is
(``specs``) does not load what runs it.
"""
