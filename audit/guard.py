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
import unicodedata

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
    "maiden": "a name",
    "guarantor": "a name",
    "nok": "a name",
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
    "social": "a social security number",
    "sin": "a social security number",
    "nino": "a social security number",
    "nhs": "a health service number",
    "nhsnumber": "a health service number",
    "passport": "a passport number",
    "licence": "a licence number",
    "license": "a licence number",
    "beneficiary": "a health plan number",
    "insurance": "a health plan number",
    "medicaid": "a health plan number",
    "medicare": "a health plan number",
    "account": "an account number",
    "tel": "a phone number",
    "cellphone": "a phone number",
    "contact": "contact details",
    "fname": "a name",
    "lname": "a name",
    "mname": "a name",
    "nickname": "a name",
    "initials": "a name",
    "alias": "a name",
    "given": "a name",
    "postal": "a ZIP code",
    "county": "an address",
    "birthplace": "an address",
    "birth": "a date of birth",
    "deathdate": "a date of death",
    "dod": "a date of death",
    "serial": "a device serial number",
    "photo": "a photograph",
    "fingerprint": "a biometric identifier",
    "biometric": "a biometric identifier",
}

# Long tokens recognised anywhere inside a name written without separators
# ("patientsurname", "homephonenumber").
_IDENTIFIER_SUBSTRINGS = {
    token: kind
    for token, kind in _IDENTIFIER_TOKENS.items()
    if len(token) >= 5 and token not in ("names", "given", "alias", "postal", "serial", "birth")
}

# ---------------------------------------------------------------------------
# Normalisation before matching. A value is matched after NFKC (full-width and
# mathematical digits and letters, the full-width "@", non-breaking and thin
# spaces), with every other Unicode decimal digit mapped to its ASCII digit,
# every dash to "-", every space or line separator to " " and every format
# character (zero-width spaces and joiners, soft hyphen, BOM) removed. The
# same mapping is applied in SQL (``normalise_sql``) with ``translate``, only
# to values holding a character outside ASCII.

_EXTRA_DASHES = "\u02d7\u2043\u2212\u2796\ufe63\uff0d"


def _normalise_table() -> tuple[str, str, str]:
    digits, dashes, spaces, drop = [], [], [], []
    for code in range(0x80, 0x110000):
        ch = chr(code)
        cat = unicodedata.category(ch)
        if cat == "Nd":
            digits.append(ch)
        elif cat == "Pd" or ch in _EXTRA_DASHES:
            dashes.append(ch)
        elif cat in ("Zs", "Zl", "Zp"):
            spaces.append(ch)
        elif cat == "Cf":
            drop.append(ch)
    src = "".join(digits) + "".join(dashes) + "".join(spaces) + "\t\n\r\x0b\x0c"
    dst = (
        "".join(str(unicodedata.decimal(ch)) for ch in digits)
        + "-" * len(dashes)
        + " " * (len(spaces) + 5)
    )
    return src, dst, "".join(drop)


NORMALISE_FROM, NORMALISE_TO, NORMALISE_DROP = _normalise_table()
_TRANSLATION = str.maketrans(NORMALISE_FROM, NORMALISE_TO, NORMALISE_DROP)


def normalise(value: str) -> str:
    """A value as the patterns see it (the Python twin of ``normalise_sql``)."""
    return unicodedata.normalize("NFKC", value).translate(_TRANSLATION)


# Separators between digit groups: one of - . _ / or a space, with spaces around.
_S = r" ?[-._/ ] ?"
_NOT_ALNUM_BEFORE = r"(^|[^a-z0-9])"
_NOT_ALNUM_AFTER = r"([^a-z0-9]|$)"

#: (kind, PostgreSQL and Python regular expression, applies to code columns),
#: matched case-insensitively against the normalised value. Code columns
#: (``code``, ``drug_code``, ``cpt_code``) hold NDC, SNOMED and other codes of
#: 9 to 11 bare digits, so the bare-digit forms do not apply to them.
VALUE_PATTERNS: tuple[tuple[str, str, bool], ...] = (
    # 123-45-6789, 123.45.6789, 123 45 6789, 123_45_6789, 123 - 45 - 6789
    ("an SSN", rf"(^|[^0-9])[0-9]{{3}}{_S}[0-9]{{2}}{_S}[0-9]{{4}}([^0-9]|$)", True),
    # a bare 9-digit number standing alone
    ("an SSN", rf"{_NOT_ALNUM_BEFORE}[0-9]{{9}}{_NOT_ALNUM_AFTER}", False),
    # SSN 123456789, social security no. 1234
    ("an SSN", r"(^|[^a-z])(ssn|social security( number| no)?)[ #:._-]*[0-9]", True),
    # any local part and domain, Unicode included
    ("an e-mail address", r"[^ @]+@[^ @]+\.[^ @.]{2,}", True),
    # (555) 123-4567, 555.123.4567, +1 555 123 4567
    (
        "a phone number",
        rf"(^|[^0-9])(\+?1{_S})?(\([0-9]{{3}}\) ?|[0-9]{{3}}{_S})[0-9]{{3}}{_S}[0-9]{{4}}([^0-9]|$)",
        True,
    ),
    # a bare 10-digit number, or 11 starting with 1, standing alone
    ("a phone number", rf"{_NOT_ALNUM_BEFORE}\+?1?[0-9]{{10}}{_NOT_ALNUM_AFTER}", False),
    # international: + and 8-15 digits with single separators (+44 20 7946 0958)
    ("a phone number", r"\+[0-9]([-._/ ()]{0,2}[0-9]){7,14}", True),
    # a scheme (with or without //), www., or a host under a common top-level domain
    (
        "a URL",
        r"(^|[^a-z0-9])(https?|ftps?|sftp|file|javascript|vbscript|mailto|tel|data) ?:"
        r"|://|www\.[a-z0-9-]+\.[a-z]"
        r"|[a-z0-9-]\.(com|org|net|gov|edu|mil|info|biz|io)([^a-z0-9]|$)",
        True,
    ),
    ("an IP address", r"(^|[^0-9.])([0-9]{1,3}\.){3}[0-9]{1,3}([^0-9.]|$)", True),
    # MRN12345678, MR# 1234, medical record no: 1234
    (
        "a medical record number",
        r"(^|[^a-z])(mrn|mr ?#|med ?rec|medical record( number| no)?)[ #:._-]*[0-9]{3}",
        True,
    ),
)

#: Columns of codes: the bare-digit patterns do not apply to them.
CODE_COLUMNS = frozenset({"code", "drug_code", "cpt_code"})


#: A field longer than this rejects the batch: no field of the format needs it,
#: and a huge one is a corrupt or hostile file.
MAX_FIELD_CHARS = 100_000
LONG_FIELD = "an over-long field (more than 100,000 characters)"

# A cheap superset of VALUE_PATTERNS over the raw text of a whole row: rows
# that match none of it are skipped before normalisation and the precise
# patterns (bounded repetition is slow in PostgreSQL). Any character outside
# printable ASCII (but chr(1), which joins a row's columns) makes a row a
# candidate, so the superset holds after normalisation.
VALUE_PREFILTER = (
    # outside printable ASCII (but chr(1)), or one of @ : # + (
    r"[^\x01\x20-\x22\x24-\x27\x29\x2a\x2c-\x39\x3b-\x3f\x41-\x7e]"
    # a dotted host: www.x, x.com
    r"|\.[A-Za-z][A-Za-z]"
    # 3-2-4 and 3-3-4 digits with separators; a separator with a space beside it
    r"|[0-9][0-9][0-9][-._/ ][0-9][0-9][0-9]?[-._/ ][0-9][0-9][0-9][0-9]|[0-9] [-._/]|[-._/] [0-9]"
    # nine digits in a row; four dotted groups
    r"|[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]|[0-9]\.[0-9]+\.[0-9]+\.[0-9]"
    r"|[Ss][Ss][Nn]|[Mm][Rr][Nn]|[Mm][Ee][Dd]([Ii][Cc][Aa][Ll])? ?[Rr][Ee][Cc]"
    r"|[Ss][Oo][Cc][Ii][Aa][Ll] [Ss][Ee][Cc]"
)


def _words(column: str) -> list[str]:
    """The words of a column name: NFKC, camelCase and letter/digit runs split."""
    text = unicodedata.normalize("NFKC", column).translate(_TRANSLATION)
    text = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", text)
    return re.findall(r"[a-z]+|[0-9]+", text.lower())


def _tokens(words: list[str]) -> list[str]:
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
    words = _words(column)
    letters = [w for w in words if not w.isdigit()]
    if len(letters) == 2 and letters[1] == "name" and letters[0] in _THING_NAMES:
        return None
    for token in _tokens(letters):
        if token in _IDENTIFIER_TOKENS:
            return _IDENTIFIER_TOKENS[token]
    joined = "".join(letters)
    for token, kind in _IDENTIFIER_SUBSTRINGS.items():
        if token in joined:
            return kind
    return None


def value_kind(value: str, column: str | None = None) -> str | None:
    """The kind of identifier a single value looks like, or None (Python side)."""
    text = normalise(value)
    for kind, pattern, on_codes in VALUE_PATTERNS:
        if column in CODE_COLUMNS and not on_codes:
            continue
        if re.search(pattern, text, flags=re.IGNORECASE):
            return kind
    return None


#: More columns than any file of the format could sensibly carry (its own and
#: a few dropped extras): a header past this is refused before anything else.
MAX_COLUMNS = 200


def check_header(spec: FileSpec, header: list[str], schema_version: str = "1.2") -> list[str]:
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
