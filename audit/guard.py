"""The de-identification guard of the extract format.

Three defences against an extract that was not de-identified as promised:

* a column outside the contract is dropped and reported, and a column whose
  name suggests a direct identifier rejects the whole batch
  (:func:`check_header`);
* an id or free-text value that looks like an SSN, an e-mail address, a phone
  number or a URL rejects the whole batch (:data:`VALUE_PATTERNS`, applied in
  SQL by the loader);
* a birth year that makes the patient 90 or older at ``as_of`` is not stored
  (the loader keeps an "age 90+" marker instead).

Messages name the file, line, column and the kind of identifier, never the
value.
"""

from __future__ import annotations

import re

from audit.contract import FileSpec
from audit.errors import BatchRejected

# Words that, as a whole token of a column name, suggest a direct identifier.
_IDENTIFIER_TOKENS = {
    "name": "a name",
    "names": "a name",
    "firstname": "a name",
    "lastname": "a name",
    "fullname": "a name",
    "surname": "a name",
    "forename": "a name",
    "givenname": "a name",
    "familyname": "a name",
    "middlename": "a name",
    "maidenname": "a name",
    "ssn": "a social security number",
    "socialsecurity": "a social security number",
    "socialsecuritynumber": "a social security number",
    "mrn": "a medical record number",
    "medicalrecord": "a medical record number",
    "medicalrecordnumber": "a medical record number",
    "address": "an address",
    "addr": "an address",
    "street": "an address",
    "city": "an address",
    "zip": "a ZIP code",
    "zipcode": "a ZIP code",
    "postcode": "a ZIP code",
    "postalcode": "a ZIP code",
    "phone": "a phone number",
    "telephone": "a phone number",
    "mobile": "a phone number",
    "cell": "a phone number",
    "fax": "a fax number",
    "email": "an e-mail address",
    "mail": "an e-mail address",
    "dob": "a date of birth",
    "birthdate": "a date of birth",
    "dateofbirth": "a date of birth",
    "birthday": "a date of birth",
    "url": "a URL",
    "website": "a URL",
    "ip": "an IP address",
    "ipaddress": "an IP address",
}

# (kind, PostgreSQL regular expression). Applied case-insensitively (~*).
VALUE_PATTERNS: tuple[tuple[str, str], ...] = (
    ("an SSN", r"(^|[^0-9])[0-9]{3}-[0-9]{2}-[0-9]{4}([^0-9]|$)"),
    ("an e-mail address", r"[a-z0-9._%+-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}"),
    (
        "a phone number",
        r"(^|[^0-9])(\+?1[ .-]?)?(\([0-9]{3}\) ?|[0-9]{3}[ .-])[0-9]{3}[ .-][0-9]{4}([^0-9]|$)",
    ),
    ("a URL", r"((https?|ftp)://|www\.[a-z0-9-]+\.[a-z])"),
)


#: A field longer than this rejects the batch: no field of the format needs it,
#: and a huge one is a corrupt or hostile file.
MAX_FIELD_CHARS = 100_000
LONG_FIELD = "an over-long field (more than 100,000 characters)"

# A cheap superset of VALUE_PATTERNS: rows that match none of it are skipped
# before the precise patterns run (bounded repetition is slow in PostgreSQL).
VALUE_PREFILTER = (
    r"[0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9][0-9][0-9]|@"
    r"|[0-9][0-9][0-9][ .-][0-9][0-9][0-9][ .-][0-9][0-9][0-9][0-9]"
    r"|\([0-9][0-9][0-9]\)|://|[Ww][Ww][Ww]\."
)


def _tokens(column: str) -> list[str]:
    words = [w for w in re.split(r"[^a-z0-9]+", column.lower()) if w]
    joined = "".join(words)
    # Also consider adjacent pairs and the whole name ("first_name", "date_of_birth").
    pairs = [a + b for a, b in zip(words, words[1:], strict=False)]
    triples = [a + b + c for a, b, c in zip(words, words[1:], words[2:], strict=False)]
    return words + pairs + triples + [joined]


# "<thing>_name" columns that name a thing, not a person.
_THING_NAMES = {
    "drug", "product", "medication", "brand", "generic", "ingredient", "site", "clinic",
    "facility", "trial", "study", "protocol", "file", "code", "program", "programme",
    "instrument", "modality", "source", "system", "display",
}  # fmt: skip


def identifier_kind(column: str) -> str | None:
    """The kind of direct identifier a column name suggests, or None."""
    words = [w for w in re.split(r"[^a-z0-9]+", column.lower()) if w]
    if len(words) == 2 and words[1] == "name" and words[0] in _THING_NAMES:
        return None
    for token in _tokens(column):
        if token in _IDENTIFIER_TOKENS:
            return _IDENTIFIER_TOKENS[token]
    return None


def value_kind(value: str) -> str | None:
    """The kind of identifier a single value looks like, or None (Python side)."""
    for kind, pattern in VALUE_PATTERNS:
        if re.search(pattern, value, flags=re.IGNORECASE):
            return kind
    return None


#: More columns than any file of the format could sensibly carry (its own and
#: a few dropped extras): a header past this is refused before anything else.
MAX_COLUMNS = 200


def check_header(spec: FileSpec, header: list[str], schema_version: str = "1.1") -> list[str]:
    """Check a CSV header; return the columns to drop (outside the contract).

    Rejects the batch for a duplicate column, a missing contract column or a
    column whose name suggests a direct identifier. Columns added after
    version 1 may be absent; in a batch of an earlier version they are
    outside its contract (dropped and reported).
    """
    allowed = spec.column_names_for(schema_version)
    if len(header) > MAX_COLUMNS:
        raise BatchRejected(
            f"header has {len(header):,} columns, more than the {MAX_COLUMNS} a file may have",
            file=spec.file_name,
            line=1,
        )
    seen: set[str] = set()
    for position, name in enumerate(header, start=1):
        if name in seen:
            raise BatchRejected(
                f"column {position} repeats a column name", file=spec.file_name, line=1
            )
        seen.add(name)
    extras = [name for name in header if name not in allowed]
    for position, name in enumerate(header, start=1):
        if name in extras:
            kind = identifier_kind(name) or value_kind(name)
            if kind:
                raise BatchRejected(
                    f"column {position} is named like {kind} (de-identification guard)",
                    file=spec.file_name,
                    line=1,
                )
    missing = [c.name for c in spec.columns if c.since == "1" and c.name not in seen]
    if missing:
        raise BatchRejected(
            "required column missing from the header",
            file=spec.file_name,
            line=1,
            column=missing[0],
        )
    return extras
