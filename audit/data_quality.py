"""``data_quality.html``: what the loads brought and what of it the audit
could not take at its word, per batch and across batches. Counts and line
numbers only: no value from a batch is shown.
"""

from __future__ import annotations

import html

import psycopg

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1d2a33;margin:2rem;
max-width:1100px}h1{font-size:1.5rem;margin:0 0 .2rem}h2{font-size:1.15rem;margin-top:2rem;
border-bottom:1px solid #d5dde3;padding-bottom:.2rem}h3{font-size:1rem}
table{border-collapse:collapse;margin:.5rem 0 1rem;width:100%}th,td{border-bottom:1px solid #e3e8ec;
padding:.3rem .5rem;text-align:left;vertical-align:top}th{background:#f3f6f8;font-weight:600}
td.n{text-align:right;font-variant-numeric:tabular-nums}.ok{color:#1b6e3a}.bad{color:#a3261b}
.muted{color:#5f6f7a}@media print{body{margin:0}h2{break-after:avoid}table{break-inside:auto}}
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _line_table(
    out: list[str], title: str, rows: list, explanation: str, unit: str = "rows"
) -> None:
    """A data-quality section: per batch, how many rows and their first lines."""
    out.append(f"<h2>{_e(title)}</h2>")
    if not rows:
        out.append("<p class='ok'>None.</p>")
        return
    out.append(
        f"<p>{explanation}</p><table><tr><th>batch</th><th>{unit}</th>"
        "<th>prescriptions.csv lines (first 20)</th></tr>"
    )
    for batch_id, n, _, lines in rows:
        out.append(
            f"<tr><td>{_e(batch_id)}</td><td class='n'>{n:,}</td>"
            f"<td>{_e(', '.join(str(x) for x in lines))}</td></tr>"
        )
    out.append("</table>")


def _after_death(out: list[str], rows: list) -> None:
    """Records dated after the patient's recorded death, per batch and file."""
    out.append("<h2>Records dated after the patient's death</h2>")
    if not rows:
        out.append("<p class='ok'>None.</p>")
        return
    out.append(
        "<p>Records of converted batches dated after the patient's recorded death"
        " (FHIR <code>Patient.deceasedDateTime</code>): kept and audited as they are; a"
        " date after death is usually an entry error or a late documentation date.</p>"
        "<table><tr><th>batch</th><th>file</th><th>records</th><th>lines (first 20)</th></tr>"
    )
    for batch_id, files in rows:
        for name, v in sorted(files.items()):
            out.append(
                f"<tr><td>{_e(batch_id)}</td><td>{_e(name)}</td><td class='n'>{v['rows']:,}</td>"
                f"<td>{_e(', '.join(str(n) for n in v['lines']))}</td></tr>"
            )
    out.append("</table>")


def data_quality_html(conn: psycopg.Connection, run_id: str) -> str:
    batches = conn.execute(
        "select batch_no, batch_id, source, as_of, status, reason, rows_in, rows_loaded,"
        " rows_quarantined, dropped_columns, age_90_plus_patients, quarantine_summary,"
        " to_char(finished_at, 'YYYY-MM-DD HH24:MI'), replacements, replace_allowed,"
        " cases_resolved, after_death from audit.batches order by batch_no"
    ).fetchall()
    validations = conn.execute(
        "select batch_no, file_name, success, statistics, results from audit.validation_results"
        " order by batch_no, file_name"
    ).fetchall()
    by_batch: dict[int, list] = {}
    for v in validations:
        by_batch.setdefault(v[0], []).append(v)
    unknown = conn.execute(
        "select count(*) from core.therapy_sessions where is_current and modality = 'UNKNOWN'"
    ).fetchone()[0]
    # Fills whose days_supply disagrees with strength x quantity / daily dose by
    # more than the policy's factor: the audit used the implied supply.
    mismatches = (
        conn.execute(
            "select b.batch_id, count(*), min(f.line_no),"
            " (array_agg(f.line_no order by f.line_no))[1:20]"
            " from core.drug_fills as f"
            " inner join audit.batches as b on b.batch_no = f.batch_no"
            " where f.supply_mismatch group by b.batch_no, b.batch_id order by b.batch_no"
        ).fetchall()
        if conn.execute("select to_regclass('core.drug_fills') is not null").fetchone()[0]
        else []
    )

    derived = conn.execute("select to_regclass('core.fill_coverage') is not null").fetchone()[0]
    # Orders of cohort patients that are no fills (their source delivers
    # dispensing) with no fill day of the ingredient from the order to 30 days
    # after it: "ordered, not dispensed".
    not_dispensed = (
        conn.execute(
            "select b.batch_id, count(*), min(o.line_no),"
            " (array_agg(o.line_no order by o.line_no))[1:20]"
            " from core.drug_fills as o"
            " inner join audit.batches as b on b.batch_no = o.batch_no"
            " where o.source_type = 'ordered' and not o.is_fill and not o.is_ignored"
            "   and not o.is_vasomotor and not o.is_seizure and o.drug_class <> 'MDMA'"
            "   and not exists (select 1 from core.fill_coverage as f"
            "                   where f.patient_id = o.patient_id and f.ingredient = o.ingredient"
            "                     and f.filled_on between o.filled_on and o.filled_on + 30)"
            " group by b.batch_no, b.batch_id order by b.batch_no"
        ).fetchall()
        if derived
        else []
    )
    # Benzodiazepine fill days whose quantity capped their supply (at most the
    # quantity in days): the rows, per batch.
    capped = (
        conn.execute(
            "select b.batch_id, count(*), min(r.line_no),"
            " (array_agg(r.line_no order by r.line_no))[1:20]"
            " from core.fill_coverage as f"
            " cross join lateral unnest(f.rx_ids) as x(rx_id)"
            " inner join core.drug_fills as r on r.rx_id = x.rx_id and r.patient_id = f.patient_id"
            " inner join audit.batches as b on b.batch_no = r.batch_no"
            " where f.quantity_capped"
            " group by b.batch_no, b.batch_id order by b.batch_no"
        ).fetchall()
        if derived
        else []
    )

    out = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<title>rxaudit data quality</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Data quality of the loaded batches</h1>",
        f"<p class='muted'>Run {_e(run_id)}. Counts only: no value from a batch is shown.</p>",
        "<h2>Batches</h2><table><tr><th>batch</th><th>source</th><th>as_of</th>"
        "<th>status</th><th>rows in</th><th>loaded</th><th>quarantined</th><th>age 90+</th>"
        "<th>finished</th></tr>",
    ]
    for b in batches:
        cls = "ok" if b[4] == "loaded" else "bad"
        out.append(
            f"<tr><td>{_e(b[1])}</td><td>{_e(b[2])}</td><td>{_e(b[3])}</td>"
            f"<td class='{cls}'>{_e(b[4])}</td><td class='n'>{b[6]:,}</td>"
            f"<td class='n'>{b[7]:,}</td><td class='n'>{b[8]:,}</td><td class='n'>{b[10]:,}</td>"
            f"<td>{_e(b[12])}</td></tr>"
        )
    out.append("</table>")
    out.append(
        f"<p>Therapy sessions of modality UNKNOWN (counted neither as trauma-focused nor "
        f"as non-trauma-focused): <b>{unknown:,}</b>.</p>"
    )
    normalised = (
        conn.execute(
            "select count(distinct drug_name) from core.drug_name_map"
            " where drug_name <> audit.clean_name(drug_name)"
        ).fetchone()[0]
        if conn.execute("select to_regclass('core.drug_name_map') is not null").fetchone()[0]
        else 0
    )
    out.append(
        f"<p>Distinct drug names of the loaded batches recognised only after Unicode"
        f" normalisation (NFKC, hidden format"
        f" characters such as zero-width spaces removed): <b>{normalised:,}</b>.</p>"
    )
    codes = conn.execute(
        "select count(*) filter (where code <> audit.clean_code(code)),"
        " count(*) filter (where audit.clean_code(code) !~ '^[A-Za-z0-9.-]*$')"
        " from core.diagnoses where is_current"
    ).fetchone()
    out.append(
        f"<p>Diagnosis codes read after the same normalisation (full-width characters,"
        f" spaces and hidden characters): <b>{codes[0]:,}</b>; codes that still hold a"
        f" character outside A-Z a-z 0-9 . - (kept, and matched as they are):"
        f" <b>{codes[1]:,}</b>.</p>"
    )
    _line_table(
        out, "Days supply disagrees with the dose", mismatches,
        "Fills of cohort patients whose <code>days_supply</code> differs from the supply"
        " that strength &times; quantity / daily dose implies by more than the policy's"
        " <code>supply_mismatch_factor</code> (the classic split-tablet entry error): the"
        " audit used the implied supply.",
        unit="fills",
    )  # fmt: skip
    _line_table(
        out, "Ordered, not dispensed", not_dispensed,
        "Orders (<code>source_type = ordered</code>) of cohort patients from a source that also"
        " delivers dispensing, so not counted as fills (policy <code>orders_as_fills</code>),"
        " with no fill of the same ingredient for the patient from the order to 30 days after"
        " it: prescribed, never collected, or dispensed elsewhere.",
    )  # fmt: skip
    _line_table(
        out, "Benzodiazepine supply capped by the quantity", capped,
        "Benzodiazepine fills whose <code>days_supply</code> was more days than tablets"
        " (every row of the fill day gives a <code>quantity</code>): the audit counted at most"
        " the quantity in days (two tablets before an MRI cover two days, not a week).",
    )  # fmt: skip
    _after_death(out, [(b[1], b[16]) for b in batches if b[16]])
    for b in batches:
        out.append(f"<h2>Batch {_e(b[1])}</h2>")
        if b[5]:
            out.append(f"<p class='bad'>{_e(b[5])}</p>")
        if b[13]:
            out.append(
                "<h3>Records added and replaced</h3><table><tr><th>file</th><th>added</th>"
                "<th>replaced</th><th>replaced records of</th></tr>"
            )
            for r in b[13]:
                sources = ", ".join(f"{k} ({v:,})" for k, v in r.get("from", {}).items())
                out.append(
                    f"<tr><td>{_e(r['file'])}</td><td class='n'>{r['added']:,}</td>"
                    f"<td class='n'>{r['replaced']:,}</td><td>{_e(sources or '-')}</td></tr>"
                )
            out.append("</table>")
            if b[14]:
                out.append("<p>Loaded with <code>--allow-replace</code> (a deliberate mass"
                           " correction).</p>")  # fmt: skip
            if b[15] is not None:
                out.append(f"<p>Cases the next audit resolved for the patients this batch"
                           f" touched: <b>{b[15]:,}</b>.</p>")  # fmt: skip
        if b[9]:
            dropped = "; ".join(f"{d['file']}: {', '.join(d['columns'])}" for d in b[9])
            out.append(f"<p>Columns outside the contract, dropped: {_e(dropped)}</p>")
        out.append("<h3>Quarantined rows by reason</h3>")
        if b[11]:
            out.append(
                "<table><tr><th>file</th><th>column</th><th>reason</th><th>rows</th>"
                "<th>first line</th></tr>"
            )
            for q in b[11]:
                out.append(
                    f"<tr><td>{_e(q['file'])}</td><td>{_e(q['column'])}</td>"
                    f"<td>{_e(q['reason'])}</td><td class='n'>{q['rows']:,}</td>"
                    f"<td class='n'>{q['first_line']}</td></tr>"
                )
            out.append("</table>")
        else:
            out.append("<p class='ok'>None.</p>")
        out.append("<h3>Great Expectations validation</h3>")
        results = by_batch.get(b[0], [])
        if not results:
            out.append("<p class='muted'>No validation results (the batch was refused first).</p>")
        for _, file_name, success, stats, exps in results:
            cls, word = ("ok", "passed") if success else ("bad", "failed")
            out.append(
                f"<p><b>{_e(file_name)}</b>: <span class='{cls}'>{word}</span> "
                f"({stats.get('successful_expectations')} of "
                f"{stats.get('evaluated_expectations')} expectations met)</p>"
            )
            failed = [e for e in exps if not e["success"]]
            if failed:
                out.append(
                    "<table><tr><th>expectation</th><th>column</th><th>unexpected</th>"
                    "<th>of rows</th></tr>"
                )
                for e in failed:
                    label = e.get("description") or e["expectation"]
                    out.append(
                        f"<tr><td>{_e(label)}</td><td>{_e(e.get('column'))}</td>"
                        f"<td class='n'>{_e(e.get('unexpected_count'))}</td>"
                        f"<td class='n'>{_e(e.get('element_count'))}</td></tr>"
                    )
                out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out)
