"""The ingest of one native batch folder into PostgreSQL, one module per step.

:mod:`~audit.ingest.load` runs the steps of one batch in order, in one
transaction under the loader's lock:

1. :mod:`~audit.ingest.ledger`: the delivery log and the batch ledger
   (idempotent re-delivery, a rejection recorded with its reason);
2. :mod:`~audit.ingest.stage`: each file's header checked, its bytes streamed
   once into the batch's stage with ``COPY`` while its SHA-256 and line breaks
   are counted;
3. :mod:`~audit.ingest.values`: each column's distinct values counted once,
   so that every check of one value at a time runs once per value;
4. :mod:`~audit.ingest.suite` and :mod:`~audit.ingest.compile`: the Great
   Expectations suites, generated from the contract, evaluated compiled to
   SQL (the key row by row, in the same scan as the guard's prefilter);
5. :mod:`~audit.ingest.guard_sql`: the de-identification guard over the
   distinct values and the keys;
6. :mod:`~audit.ingest.rowchecks`: the row checks that quarantine bad rows
   (file, line, column, reason);
7. :mod:`~audit.ingest.replace`: the replacement guard;
8. :mod:`~audit.ingest.merge`: good rows typed and merged into ``core``, Safe
   Harbor applied at the newest ``as_of``.

SQL fragments shared by these steps are in :mod:`~audit.ingest.fragments`.
"""

from audit.ingest.load import BatchResult, LoadSettings, ingest

__all__ = ["BatchResult", "LoadSettings", "ingest"]
