"""rxaudit: a prescribing audit for PTSD care.

The package holds all of the pipeline's logic and runs without Airflow:
``audit.ingest`` ingests native batches, ``audit.pipeline`` runs a whole audit,
``audit.cli`` is the ``rxaudit`` command line.
"""

__version__ = "0.1.0"
