"""Deployment: where an explain run gets its Dask workers.

- :mod:`tomocam.deploy.cluster`: a client for a run: a local cluster sized to the machine, a running cluster
  joined through its scheduler file, or SLURM worker jobs;
- :mod:`tomocam.deploy.slurm`: the SLURM site settings (defaults in the packaged ``slurm.yaml``), the ``sbatch``
  options of the batch scripts in ``scripts/slurm/`` and the dask-jobqueue cluster of ``--cluster slurm``.

``tomocam slurm ...`` (:mod:`tomocam.cli.slurm`) prints these for the batch scripts and for users.
"""
