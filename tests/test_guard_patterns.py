"""The guard's normaliser and patterns: identifiers in every written form of
their families are recognised (Hypothesis), harmless values of the format
pass, and the SQL normaliser the loader runs agrees with the Python one."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from audit import guard
from audit.errors import BatchRejected
from audit.ingest import guard_sql, ingest
from tests.batches import base_tables, make_batch
from tests.test_loader import loaded_nothing

# Every Unicode decimal digit, by value; every dash; spaces the normaliser maps.
_DIGITS = {
    d: [chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) == "Nd"
        and unicodedata.decimal(chr(c)) == d]
    for d in range(10)
}  # fmt: skip
_DASHES = ["-", "\u2010", "\u2011", "\u2012", "\u2013", "\u2014", "\u2212", "\ufe63", "\uff0d"]
_SEPARATORS = [*_DASHES, ".", " ", "_", "/", "\u00a0", "\u2009", "\u3000", " - "]
_FORMAT = ["", "", "", "\u200b", "\u200d", "\u00ad", "\ufeff"]


@st.composite
def digit_text(draw, n: int) -> str:
    """n digits, each in any script's form, with a format character here and there."""
    out = []
    for _ in range(n):
        out.append(draw(st.sampled_from(_DIGITS[draw(st.integers(0, 9))])))
        out.append(draw(st.sampled_from(_FORMAT)))
    return "".join(out)


def _around(draw, core: str) -> str:
    before = draw(st.sampled_from(["", "Sertraline ", "note: ", "(", "x "]))
    after = draw(st.sampled_from(["", " 50 mg", ")", ";", " refill"]))
    return before + core + after


@st.composite
def ssns(draw) -> str:
    sep = draw(st.sampled_from(_SEPARATORS))
    sep2 = draw(st.sampled_from([sep, draw(st.sampled_from(_SEPARATORS))]))
    core = draw(digit_text(3)) + sep + draw(digit_text(2)) + sep2 + draw(digit_text(4))
    return _around(draw, core)


@st.composite
def phones(draw) -> str:
    form = draw(st.sampled_from(["dashed", "paren", "bare", "plus1", "intl"]))
    sep = draw(st.sampled_from(_SEPARATORS))
    a, b, c = draw(digit_text(3)), draw(digit_text(3)), draw(digit_text(4))
    core = {
        "dashed": f"{a}{sep}{b}{sep}{c}",
        "paren": f"({a}) {b}{sep}{c}",
        "bare": f"{a}{b}{c}",
        "plus1": f"+1 {a}{sep}{b}{sep}{c}",
        "intl": "+" + draw(st.sampled_from(["44 20 ", "33 1 ", "49 30 ", "81-3-", "91 "]))
        + draw(digit_text(4)) + " " + draw(digit_text(4)),
    }[form]  # fmt: skip
    return _around(draw, core)


_LOCAL = st.text(
    alphabet=st.sampled_from("abcxyz0159._+-éøçжё漢字"), min_size=1, max_size=12
).filter(lambda s: s.strip(".") == s)
_LABEL = st.text(alphabet=st.sampled_from("abcmnxyz019-äöüñ漢字ק"), min_size=1, max_size=10)


@st.composite
def emails(draw) -> str:
    at = draw(st.sampled_from(["@", "\uff20", "\ufe6b"]))
    tld = draw(st.sampled_from(["org", "com", "de", "jp", "рф", "info"]))
    return _around(draw, f"{draw(_LOCAL)}{at}{draw(_LABEL)}.{tld}")


@st.composite
def urls(draw) -> str:
    scheme = draw(st.sampled_from(["http", "https", "HTTP", "ftp", "javascript", "file"]))
    slashes = draw(st.sampled_from(["//", "", "/"]))
    return _around(draw, f"{scheme}:{slashes}{draw(_LABEL)}")


@st.composite
def mrns(draw) -> str:
    prefix = draw(st.sampled_from(["MRN", "mrn", "MRN:", "MRN ", "MR#", "MR #", "Med Rec "]))
    return _around(draw, prefix + draw(digit_text(draw(st.integers(6, 10)))))


FAMILIES = {
    "an SSN": ssns(),
    "a phone number": phones(),
    "an e-mail address": emails(),
    "a URL": urls(),
    "a medical record number": mrns(),
}


@pytest.mark.unit
@pytest.mark.parametrize("kind", FAMILIES)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_written_form_of_an_identifier_is_recognised(kind, data):
    value = data.draw(FAMILIES[kind])
    assert guard.value_kind(value, "drug_name") is not None, ascii(value)


# What the format's columns hold: ids, drug names and codes, never identifiers.
HARMLESS = [
    "Sertraline 50 MG Oral Tablet", "Paroxetine CR 12.5 MG Extended Release Tablet",
    "sertraline HCl 100 mg tab [Zoloft]", "Xanax 0.5 mg", "ALPRAZOLAM TAB", "Zoloft 100 mg/d",
    "trazodone 50mg q.h.s.", "fluoxetine 20 mg cap.", "Venlafaxine ER 75-150 mg",
    "0093-7146-56", "12345-678-90", "pt-0000123", "rx-0000123-005", "dr-0101", "th-0203",
    "site-01", "F43.10", "F43.1", "309.81", "NCT01234567", "pt-8f3a9c01d2e4b5a6c7d8e9f0",
    "rx-pt-0000123-017", "b-2026-11-30.001", "90837", "Prolonged exposure 1.5 h",
]  # fmt: skip
CODES = ["00093714656", "0093714656", "191736004", "47505003", "313182004", "1000048"]


@pytest.mark.unit
@pytest.mark.parametrize("value", HARMLESS)
def test_harmless_values_of_the_format_pass(value):
    assert guard.value_kind(value, "drug_name") is None


@pytest.mark.unit
@pytest.mark.parametrize("value", CODES)
def test_bare_digit_codes_pass_in_code_columns_only(value):
    assert guard.value_kind(value, "drug_code") is None
    assert guard.value_kind(value, "code") is None


@pytest.mark.unit
@given(st.text(max_size=30))
def test_normalising_is_idempotent_and_leaves_no_format_character(value):
    once = guard.normalise(value)
    assert guard.normalise(once) == once
    assert not any(unicodedata.category(ch) == "Cf" for ch in once)
    assert not any(unicodedata.category(ch) == "Nd" and not ch.isascii() for ch in once)


@pytest.mark.db
@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.one_of(*FAMILIES.values(), st.sampled_from(HARMLESS)))
def test_the_sql_normaliser_and_patterns_agree_with_python(conn, value):
    """What the loader matches in PostgreSQL is what the Python guard matches."""
    query = sql.SQL("select {}").format(guard_sql.normalise_sql(sql.Literal(value)))
    assert conn.execute(query).fetchone()[0] == guard.normalise(value)
    text = guard.normalise(value)
    for _kind, pattern, _codes in guard.VALUE_PATTERNS:
        in_sql = conn.execute("select %s ~* %s", (text, pattern)).fetchone()[0]
        import re

        assert in_sql == bool(re.search(pattern, text, flags=re.IGNORECASE)), (
            ascii(value),
            pattern,
        )
    # the prefilter is a superset: a value any pattern matches is a candidate
    if guard.value_kind(value, "drug_name"):
        assert conn.execute("select %s ~ %s", (value, guard.VALUE_PREFILTER)).fetchone()[0]


# The attack's values, each through the loader: the batch is rejected, nothing
# is loaded and the message names the line and column, never the value.
ATTACK_VALUES = {
    "ssn dotted": ("prescriptions", "drug_name", "Sertraline 123.45.6789", "an SSN"),
    "ssn spaced": ("prescriptions", "drug_name", "123 45 6789", "an SSN"),
    "ssn underscores": ("prescriptions", "prescriber_id", "123_45_6789", "an SSN"),
    "ssn arabic digits": ("prescriptions", "drug_name", "\u0661\u0662\u0663-\u0664\u0665-"
                          "\u0666\u0667\u0668\u0669", "an SSN"),
    "ssn unicode dashes": ("prescriptions", "drug_name", "123\u201145\u20136789", "an SSN"),
    "bare phone id": ("prescriptions", "prescriber_id", "5551234567", "a phone number"),
    "international phone": ("prescriptions", "drug_name", "+44 20 7946 0958", "a phone number"),
    "unicode e-mail": ("prescriptions", "drug_name", "jöhn@exämple.de", "an e-mail address"),
    "url without slashes": ("prescriptions", "drug_name", "see http:host", "a URL"),
    "mrn in a drug name": ("prescriptions", "drug_name", "Sertraline MRN12345678",
                           "a medical record number"),
    "zero-width inside an ssn": ("therapy_sessions", "clinician_id", "123\u200b-45-6789",
                                 "an SSN"),
}  # fmt: skip


@pytest.mark.db
@pytest.mark.parametrize("case", ATTACK_VALUES, ids=list(ATTACK_VALUES))
def test_attack_values_reject_the_batch(conn, tmp_path, case):
    table, column, value, kind = ATTACK_VALUES[case]
    tables = base_tables(n_rx=2)
    tables[table][-1][column] = value
    with pytest.raises(BatchRejected) as info:
        ingest(conn, make_batch(tmp_path, tables=tables))
    message = str(info.value)
    assert (
        f"{table}.csv line {len(tables[table]) + 1} column {column}: value looks like {kind}"
        in (message)
    )
    assert value not in message
    assert loaded_nothing(conn)


@pytest.mark.db
def test_bare_digit_codes_load(conn, tmp_path):
    tables = base_tables()
    tables["prescriptions"][0]["drug_code"] = "00093714656"
    tables["prescriptions"][0]["drug_code_system"] = "NDC"
    assert ingest(conn, make_batch(tmp_path, tables=tables)).status == "loaded"


IDENTIFIER_LIKE_COLUMNS = [
    "patient_name_2", "surname", "dob", "mrn_number", "phone1", "e_mail", "zipcode",
    "street_address", "social", "PatientName", "homePhoneNumber", "patientsurname",
    "\uff4e\uff41\uff4d\uff45", "tel_no", "given_name", "zip5", "passport_no", "insurance_id",
]  # fmt: skip


@pytest.mark.unit
@pytest.mark.parametrize("column", IDENTIFIER_LIKE_COLUMNS)
def test_identifier_like_column_names_are_recognised(column):
    assert guard.identifier_kind(column) is not None
