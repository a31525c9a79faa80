"""Source adapters: other standard formats into native batches.

Each adapter reads a source export and writes a native batch folder (CSV files
and manifest) that then goes through the normal, guarded ingest, so every
source has one ingestion path and an auditable intermediate. Adapters stream:
they hold lookup tables (concepts, patient tokens) but never a whole table.
"""

from audit.adapters.common import Tokenizer
from audit.adapters.dispatch import convert

__all__ = ["Tokenizer", "convert"]
