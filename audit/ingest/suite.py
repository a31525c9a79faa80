"""Great Expectations suites for the batch files, generated from the contract.

One suite per file of the extract format, generated from the catalogue in
:mod:`audit.contract` as Great Expectations' own JSON (:func:`suite_of`):
required columns are not null; ids, trial ids, dates, whole numbers,
decimals and booleans match their formats; enumerations are in their sets;
ids are 1-64 characters; keys are unique; patient ids refer to a known
patient (an ``UnexpectedRowsExpectation`` query). Ranges (``days_supply``
1-365, scores 0-80, decimals above 0, dates that exist in the calendar) are
the row checks' (:mod:`audit.ingest.rowchecks`), which quarantine each such
row.

The load evaluates the suites compiled to SQL (:mod:`audit.ingest.compile`),
in one aggregate per file inside the load's own transaction.
:func:`validate_with_gx` runs them with Great Expectations itself on the
same rows (handed the loader's connection, see :class:`LendableConnection`):
the parity test asserts both count the same. Results keep counts and
percentages only: ``partial_unexpected_count`` is 0, so no value of a batch
is ever stored with them.
"""

from __future__ import annotations

import logging
import threading
import uuid
from functools import lru_cache

import psycopg

from audit import contract
from audit.contract import FileSpec
from audit.db import LendableConnection
from audit.ingest.fragments import stage_name
from audit.ingest.rowchecks import Proven

log = logging.getLogger(__name__)

BOOL_PATTERN = "^([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])$"
RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 0}


_gx_lock = threading.Lock()


def _gx():
    with _gx_lock:
        return _make_gx()


@lru_cache(maxsize=1)
def _make_gx():
    for name in ("great_expectations", "great_expectations.core", "py.warnings"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    _quiet_gx_loggers()
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    _quiet_gx_loggers()
    return gx, context


def _quiet_gx_loggers() -> None:
    """GX sets levels on its own loggers at import; its INFO lines flood logs."""
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("great_expectations"):
            logging.getLogger(name).setLevel(logging.ERROR)


def suite_of(spec: FileSpec, batch_no: int | None = None) -> dict:
    """The expectation suite of one file, as Great Expectations' own JSON.

    ``batch_no`` scopes the patient check to the batch's stage. The suite is
    data: :func:`to_gx` makes it a GX suite, and :mod:`audit.ingest.compile`
    evaluates each of its expectations in SQL during the load.
    """
    expectations: list[dict] = []

    def expect(kind: str, description: str | None = None, **kwargs) -> None:
        item = {"type": kind, "kwargs": kwargs, "meta": {}}
        if description:
            item["description"] = description
        expectations.append(item)

    # No "column exists" expectation: the stage always has every contract
    # column (the header check rejects a file missing one), so it could never
    # fail.
    for col in spec.columns:
        if col.required:
            expect("expect_column_values_to_not_be_null", column=col.name)
        regex = {
            contract.ID: contract.ID_PATTERN,
            contract.NCT: contract.NCT_PATTERN,
            contract.DATE: contract.DATE_PATTERN,
            contract.INT: contract.INT_PATTERN,
            contract.DECIMAL: contract.DECIMAL_PATTERN,
            contract.BOOL: BOOL_PATTERN,
        }.get(col.kind)
        if regex:
            expect("expect_column_values_to_match_regex", column=col.name, regex=regex)
        if col.kind == contract.ENUM:
            expect("expect_column_values_to_be_in_set", column=col.name, value_set=list(col.values))
        if col.kind == contract.ID:
            expect("expect_column_value_lengths_to_be_between", column=col.name,
                   min_value=1, max_value=contract.ID_MAX_LENGTH)  # fmt: skip
    expect("expect_column_values_to_be_unique", column=spec.key)
    if spec.refers_to_patient and batch_no is not None:
        ident = "stage." + stage_name("patients", batch_no)
        expect(
            "unexpected_rows_expectation",
            description="patient_id: refers to a known patient",
            unexpected_rows_query=(
                "select r.line_no from (select * from {batch}) r where not exists (select 1 from "  # noqa: S608
                f"{ident} p where p.patient_id = r.patient_id) and not exists ("
                "select 1 from core.patients c where c.is_current "
                "and c.patient_id = r.patient_id)"
            ),
        )
    return {"name": f"rxaudit.{spec.table}", "expectations": expectations, "meta": {}}


def to_gx(suite: dict):
    """The suite as a Great Expectations ``ExpectationSuite``."""
    gx, _ = _gx()
    return gx.ExpectationSuite(**suite)


def _raised(info) -> bool:
    """GX reports exceptions flat or keyed by metric."""
    if not info:
        return False
    if info.get("raised_exception"):
        return True
    return any(isinstance(v, dict) and v.get("raised_exception") for v in info.values())


def _summarise(file_name: str, suite_name: str, res) -> dict:
    results = []
    for r in res.results:
        cfg = r.expectation_config
        detail = r.result or {}
        results.append(
            {
                "expectation": cfg.type,
                "column": cfg.kwargs.get("column"),
                "description": cfg.description,
                "success": bool(r.success),
                "element_count": detail.get("element_count"),
                "unexpected_count": detail.get("unexpected_count")
                if "unexpected_count" in detail
                else detail.get("observed_value"),
                "unexpected_percent": detail.get("unexpected_percent"),
                "exception": _raised(r.exception_info),
            }
        )
    return {
        "file": file_name,
        "suite": suite_name,
        "success": bool(res.success),
        "statistics": dict(res.statistics),
        "results": results,
        "engine": "great_expectations " + _gx()[0].__version__,
    }


def validate_with_gx(conn: psycopg.Connection, batch_no: int, specs: list[FileSpec]) -> list[dict]:
    """Run each file's suite with Great Expectations itself on its stage,
    inside ``conn``'s transaction (what :mod:`audit.ingest.compile` must
    agree with)."""
    if not isinstance(conn, LendableConnection):
        raise TypeError("validate_batch needs a LendableConnection (see audit.db.connect)")
    gx, context = _gx()
    from sqlalchemy.pool import StaticPool

    # A name never used before in this process: GX keeps state by datasource
    # name, and id(conn) of a closed connection can come back for a new one.
    name = f"rxaudit_batch_{batch_no}_{uuid.uuid4().hex}"
    out: list[dict] = []
    conn.lent = conn.borrowed = True
    try:
        ds = context.data_sources.add_postgres(
            name=name,
            connection_string="postgresql+psycopg://rxaudit@loader-connection/rxaudit",
            kwargs={
                "creator": lambda: conn,
                "poolclass": StaticPool,
                "pool_reset_on_return": None,
            },
        )
        try:
            for spec in specs:
                table = stage_name(spec.table, batch_no)
                asset = ds.add_table_asset(name=spec.table, table_name=table, schema_name="stage")
                batch = asset.add_batch_definition_whole_table("batch").get_batch()
                suite = to_gx(suite_of(spec, batch_no))
                res = batch.validate(suite, result_format=RESULT_FORMAT)
                summary = _summarise(spec.file_name, suite.name, res)
                failed = [r for r in summary["results"] if r["exception"]]
                if failed:
                    raise RuntimeError(
                        f"expectation {failed[0]['expectation']} of suite {suite.name} "
                        "could not be evaluated"
                    )
                out.append(summary)
        finally:
            context.data_sources.delete(name)
    finally:
        conn.lent = False
    return out


def proven(summary: dict, spec: FileSpec) -> Proven:
    """What a file's validation found true of every row (see :class:`~audit.ingest.rowchecks.Proven`).

    An expectation counts only if it succeeded and was evaluated: the suites
    set no ``mostly``, so success means no row was unexpected.
    """
    columns: dict[str, bool] = {}
    unique_key = known_patients = False
    for r in summary["results"]:
        held = bool(r["success"]) and not r["exception"]
        if r["expectation"] == "expect_column_values_to_be_unique" and r["column"] == spec.key:
            unique_key = held
        elif r["expectation"] == "unexpected_rows_expectation":
            known_patients = held
        if r["column"]:
            columns[r["column"]] = columns.get(r["column"], True) and held
    return Proven(
        frozenset(c for c, held in columns.items() if held and c in spec.column_names),
        unique_key,
        known_patients,
    )
