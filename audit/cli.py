"""The ``rxaudit`` command line.

Every command prints progress on stderr and ends with a one-line summary on
stdout. Errors are one sentence on stderr and an exit code (0 success,
1 internal error, 2 usage error, 3 a batch was rejected, 4 the database cannot
be reached); a traceback only with ``--debug``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import traceback
from pathlib import Path

from audit import __version__
from audit.errors import RxauditError, UsageError


def _progress(quiet: bool):
    def emit(message: str) -> None:
        if not quiet:
            print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    return emit


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from audit import db

    with db.session(upgrade_schema=False) as conn:
        applied = db.upgrade(conn)
    print(f"database {db.describe(db.database_url())}: "
          f"{len(applied)} migration(s) applied, schema current")  # fmt: skip
    return 0


def _as_of(value: str | None):
    return _date_arg(value, "--as-of")


def _date_arg(value: str | None, flag: str):
    import datetime as dt

    try:
        return dt.date.fromisoformat(value) if value else None
    except ValueError:
        raise UsageError(f"{flag} must be a date YYYY-MM-DD") from None


def cmd_convert(args: argparse.Namespace) -> int:
    from audit.adapters import convert

    out = Path(args.out)
    manifest, report = convert(
        args.source, Path(args.src_dir), out, _as_of(args.as_of), args.site,
        order_supply_days=args.order_supply_days,
        history_from=_date_arg(args.history_from, "--history-from"),
    )  # fmt: skip
    if not args.quiet:
        for line in report.lines():
            print(line, file=sys.stderr)
    rows = sum(f["rows"] for f in manifest["files"].values())
    print(f"batch {manifest['batch_id']}: {rows:,} rows in {out}; "
          f"mapping report {out.parent / (out.name + '.mapping.json')}")  # fmt: skip
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from audit import pipeline
    from audit.ingest import LoadSettings

    if not 0 <= args.max_quarantine_fraction <= 1:
        raise UsageError("--max-quarantine-fraction must be between 0 and 1")
    if not 0 <= args.max_replace_fraction <= 1:
        raise UsageError("--max-replace-fraction must be between 0 and 1")
    settings = LoadSettings(
        max_quarantine_fraction=args.max_quarantine_fraction,
        max_replace_fraction=args.max_replace_fraction,
        allow_replace=args.allow_replace,
    )
    check_out_dir(Path(args.out))
    batch_dirs = [Path(b) for b in args.batch_dirs]
    staging = None
    try:
        if args.source:
            import tempfile

            from audit.adapters import convert

            # converted batches live only for this run (nothing converted
            # outlives it; `rxaudit convert --out` keeps one on purpose)
            staging = Path(tempfile.mkdtemp(prefix="rxaudit-convert-"))
            converted = []
            for i, src in enumerate(batch_dirs):
                out = staging / f"batch-{i:03d}"
                convert(args.source, src, out, _as_of(args.as_of), args.site,
                        order_supply_days=args.order_supply_days,
                        history_from=_date_arg(args.history_from, "--history-from"))  # fmt: skip
                converted.append(out)
            batch_dirs = converted
        summary = pipeline.run(
            batch_dirs,
            Path(args.out),
            settings=settings,
            progress=_progress(args.quiet),
            policy_path=Path(args.policy) if args.policy else None,
            shared=args.shared,
            full_audit=args.full_audit,
        )
    finally:
        if staging is not None:
            import shutil

            shutil.rmtree(staging, ignore_errors=True)
    for batch in summary["batches"]:
        if batch["status"] == "rejected":
            print(f"rxaudit: {batch['reason']}", file=sys.stderr)
    counts = summary["counts"]
    if summary.get("status") == "rejected":
        print(f"nothing loaded: {counts['rejected']} batch(es) rejected;"
              " no audit run and no report written")  # fmt: skip
        return 3
    print(
        f"run {summary['run_id']}: {counts['loaded']} batch(es) loaded, "
        f"{counts['duplicate']} already loaded, {counts['rejected']} rejected; "
        f"{summary['rows_in']} rows in, {summary['rows_quarantined']} quarantined; "
        f"{summary['cases']['open']} open case(s) in {summary['cohort_patients']} cohort patients; "
        f"report in {summary['report_dir']}"
    )
    return 3 if counts["rejected"] else 0


def check_out_dir(out: Path) -> None:
    """The reports folder exists (created if need be) and is writable, before
    anything loads; else one sentence naming the path."""
    import os
    import tempfile

    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UsageError(f"--out {out}: exists and is not a folder") from None
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot create the folder ({exc.strerror})") from None
    if not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=out, prefix=".rxaudit-write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UsageError(f"--out {out}: not writable ({exc.strerror})") from None


def cmd_batches(args: argparse.Namespace) -> int:
    from audit import batches

    rows = batches.list_batches()
    batches.print_table(rows, sys.stdout)
    print(f"{len(rows)} batch(es)")
    return 0


def cmd_batch_show(args: argparse.Namespace) -> int:
    from audit import batches

    batches.print_batch(batches.show(args.batch_id), sys.stdout)
    return 0


def cmd_batch_original(args: argparse.Namespace) -> int:
    from audit import db, originals

    with db.read_session() as conn:
        if args.line is not None:
            originals.write_line(conn, args.batch_id, args.file_name, args.line, sys.stdout)
        elif args.to:
            with open(args.to, "xb") as fh:
                n = originals.write(conn, args.batch_id, args.file_name, fh)
            print(f"{args.file_name} of batch {args.batch_id}: {n:,} bytes written to {args.to},"
                  " SHA-256 checked")  # fmt: skip
        else:
            originals.write(conn, args.batch_id, args.file_name, sys.stdout.buffer)
    return 0


def cmd_batch_withdraw(args: argparse.Namespace) -> int:
    from audit import pipeline
    from audit.cases import cell

    check_out_dir(Path(args.out))
    done, summary = pipeline.withdraw(
        args.batch_id,
        args.reason,
        args.by,
        Path(args.out),
        progress=_progress(args.quiet),
        policy_path=Path(args.policy) if args.policy else None,
        shared=args.shared,
    )
    removed = sum(f["removed"] for f in done["files"])
    restored = sum(f["restored"] for f in done["files"])
    print(
        f"batch {args.batch_id} withdrawn by {cell(args.by)}: {removed} record(s) left core,"
        f" {restored} earlier version(s) current again (raw keeps every row);"
        f" full audit {summary['run_id']}: {summary['cases']['open']} open case(s);"
        f" report in {summary['report_dir']}"
    )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from audit.web.app import create_app

    if not 1 <= args.port <= 65535:
        raise UsageError("--port must be between 1 and 65535")
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning")
    return 0


def cmd_users_add(args: argparse.Namespace) -> int:
    from audit import users

    password = sys.stdin.readline().rstrip("\r\n")
    users.add(args.name, args.role, args.site, password)
    sites = ", ".join(args.site) if args.site else "every site"
    print(f"user {args.name}: {args.role} of {sites}")
    return 0


def cmd_users_disable(args: argparse.Namespace) -> int:
    from audit import users

    users.disable(args.name)
    print(f"user {args.name}: disabled, sessions ended")
    return 0


def cmd_users_set_sites(args: argparse.Namespace) -> int:
    from audit import users

    users.set_sites(args.name, args.site)
    print(f"user {args.name}: sites {', '.join(args.site) or '(none)'}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    import datetime as dt

    from audit.generate import generate

    if args.patients < 1:
        raise UsageError("--patients must be at least 1")
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"{out} exists and is not empty")
    try:
        as_of = dt.date.fromisoformat(args.as_of) if args.as_of else None
    except ValueError:
        raise UsageError("--as-of must be a date YYYY-MM-DD") from None
    if args.format == "fhir":
        import shutil
        import tempfile

        from audit.adapters.fhir_write import write_bulk

        native = Path(tempfile.mkdtemp(prefix="rxaudit-generate-"))
        try:
            generate(args.patients, args.seed, native / "batch", as_of,
                     progress=_progress(args.quiet))  # fmt: skip
            counts = write_bulk(native / "batch", out)
        finally:
            shutil.rmtree(native, ignore_errors=True)
        print(f"FHIR bulk export: {args.patients:,} patients, {sum(counts.values()):,} resources"
              f" in {out}")  # fmt: skip
        return 0
    manifest = generate(args.patients, args.seed, out, as_of, progress=_progress(args.quiet))
    rows = sum(f["rows"] for f in manifest["files"].values())
    print(f"batch {manifest['batch_id']}: {args.patients:,} patients, {rows:,} rows in {out}")
    return 0


REVIEW_STATUSES = ("confirmed", "justified", "false_positive", "reopened")


def cmd_review(args: argparse.Namespace) -> int:
    from audit import cases

    note = args.note.strip()
    if not note or not args.reviewer.strip():
        raise UsageError("--note and --reviewer must not be empty")
    review_id, rule_id = cases.review(args.case_id, args.status, note, args.reviewer.strip())
    print(f"review {review_id}: case {args.case_id} ({rule_id}) {args.status} by {args.reviewer}")
    return 0


def cmd_cases(args: argparse.Namespace) -> int:
    from audit import cases

    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    rows, total = cases.list_cases(
        rule=args.rule, site=args.site, status=args.status, review=args.review, limit=args.limit
    )
    cases.print_table(rows, sys.stdout)
    print(f"{total} case(s){'' if total <= len(rows) else f', first {len(rows)} shown'}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from audit import demo

    out = Path(args.out)
    result = demo.run(args.patients, args.seed, out, _progress(args.quiet))
    failed = [d for d, f in result.items() if "success" not in f["state"]]
    dashboard = (out / "latest" / "dashboard.html").resolve()
    if failed or not dashboard.exists():
        raise RxauditError(f"the demo did not finish: {', '.join(failed) or 'no dashboard'}")
    print(f"demo done: open {dashboard}")
    return 0


def psycopg_operational() -> type[Exception]:
    """psycopg's OperationalError (imported late: the CLI starts fast)."""
    import psycopg

    return psycopg.OperationalError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rxaudit",
        description="Prescribing audit for PTSD care over de-identified extracts.",
    )
    parser.add_argument("--version", action="version", version=f"rxaudit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument("--quiet", action="store_true", help="no progress messages")
    # --debug and --quiet work before or after the command.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks and debug logs")  # fmt: skip
    common.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="no progress messages")  # fmt: skip
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p_db = sub.add_parser("db", parents=[common], help="database schema commands")
    db_sub = p_db.add_subparsers(dest="db_command", metavar="SUBCOMMAND")
    p_up = db_sub.add_parser("upgrade", parents=[common], help="create or migrate the schema")
    p_up.set_defaults(func=cmd_db_upgrade)

    p_run = sub.add_parser(
        "run", parents=[common], help="ingest batches and write this run's reports"
    )
    p_run.add_argument("batch_dirs", nargs="+", metavar="BATCH_DIR")
    p_run.add_argument("--out", required=True, metavar="DIR", help="reports folder")
    p_run.add_argument(
        "--max-quarantine-fraction",
        type=float,
        default=0.01,
        metavar="F",
        help="reject a batch when more than this share of its rows is quarantined (0.01)",
    )
    p_run.add_argument(
        "--max-replace-fraction",
        type=float,
        default=0.10,
        metavar="F",
        help="reject a batch that would replace more than this share of a file's current"
        " records delivered by earlier batches of its source (0.10)",
    )
    p_run.add_argument(
        "--allow-replace",
        action="store_true",
        help="let a deliberate mass correction through the replacement guard",
    )
    p_run.add_argument(
        "--policy",
        metavar="FILE",
        help="a site's policy file (TOML) over the default policy 2027.2,"
        " or a bundled policy by its version (2026.1, 2027.1, 2027.2)",
    )
    p_run.add_argument(
        "--from", dest="source", choices=("omop", "synthea", "fhir"),
        help="the folders are OMOP, Synthea or FHIR R4 exports: convert them first",
    )  # fmt: skip
    p_run.add_argument("--order-supply-days", type=int, metavar="N",
                       help="with --from fhir: the supply of an order that gives none (30)")  # fmt: skip
    p_run.add_argument("--as-of", metavar="DATE", help="with --from: the extract's as_of")
    p_run.add_argument(
        "--history-from", metavar="DATE", help="with --from: the first date the extract covers"
    )
    p_run.add_argument("--site", metavar="SITE", help="with --from: the site of every record")
    p_run.add_argument(
        "--shared",
        action="store_true",
        help="also write dashboard_shared.html, holding only suppressed aggregates",
    )
    p_run.add_argument(
        "--full-audit",
        action="store_true",
        help="re-evaluate every patient, even when only some were touched since the last run",
    )
    p_run.set_defaults(func=cmd_run)

    p_rev = sub.add_parser(
        "review", parents=[common], help="record a reviewer's disposition of a case"
    )
    p_rev.add_argument("case_id", metavar="CASE_ID")
    p_rev.add_argument("--status", required=True, choices=REVIEW_STATUSES)
    p_rev.add_argument("--note", required=True, metavar="TEXT")
    p_rev.add_argument("--reviewer", required=True, metavar="ID")
    p_rev.set_defaults(func=cmd_review)

    p_cases = sub.add_parser("cases", parents=[common], help="list cases from the database")
    p_cases.add_argument("--rule", metavar="R")
    p_cases.add_argument("--site", metavar="S")
    p_cases.add_argument("--status", choices=("open", "excluded", "resolved"))
    p_cases.add_argument(
        "--review", choices=(*REVIEW_STATUSES, "none"), help="latest review status, or 'none'"
    )
    p_cases.add_argument("--limit", type=int, default=100, metavar="N", help="rows to print (100)")
    p_cases.set_defaults(func=cmd_cases)

    p_batches = sub.add_parser(
        "batches", parents=[common], help="the loaded batches: rows added, records replaced"
    )
    p_batches.set_defaults(func=cmd_batches)
    p_users = sub.add_parser("users", parents=[common], help="the workspace's accounts")
    users_sub = p_users.add_subparsers(dest="users_command", metavar="SUBCOMMAND")
    p_uadd = users_sub.add_parser(
        "add", parents=[common], help="create an account (or replace its role, sites, password)"
    )
    p_uadd.add_argument("name", metavar="NAME")
    p_uadd.add_argument("--role", required=True, choices=("reviewer", "lead", "auditor"))
    p_uadd.add_argument("--site", action="append", default=[], metavar="SITE",
                        help="a site whose patients the account may see (repeat)")  # fmt: skip
    p_uadd.add_argument("--password-stdin", action="store_true", required=True,
                        help="read the password from standard input (never an argument)")  # fmt: skip
    p_uadd.set_defaults(func=cmd_users_add)
    p_udis = users_sub.add_parser("disable", parents=[common], help="disable an account")
    p_udis.add_argument("name", metavar="NAME")
    p_udis.set_defaults(func=cmd_users_disable)
    p_usites = users_sub.add_parser("set-sites", parents=[common], help="set an account's sites")
    p_usites.add_argument("name", metavar="NAME")
    p_usites.add_argument("--site", action="append", default=[], metavar="SITE")
    p_usites.set_defaults(func=cmd_users_set_sites)

    p_serve = sub.add_parser("serve", parents=[common], help="the QI team's workspace (web)")
    p_serve.add_argument("--host", default="127.0.0.1", metavar="H", help="address (127.0.0.1)")
    p_serve.add_argument("--port", type=int, default=8080, metavar="P", help="port (8080)")
    p_serve.set_defaults(func=cmd_serve)

    p_batch = sub.add_parser("batch", parents=[common], help="one batch in full")
    batch_sub = p_batch.add_subparsers(dest="batch_command", metavar="SUBCOMMAND")
    p_show = batch_sub.add_parser(
        "show", parents=[common], help="a batch's files, replacements and reason"
    )
    p_show.add_argument("batch_id", metavar="BATCH_ID")
    p_show.set_defaults(func=cmd_batch_show)
    p_orig = batch_sub.add_parser(
        "original", parents=[common],
        help="a delivered file as it arrived (SHA-256 checked), or one of its lines",
    )  # fmt: skip
    p_orig.add_argument("batch_id", metavar="BATCH_ID")
    p_orig.add_argument("file_name", metavar="FILE", help="e.g. prescriptions.csv")
    p_orig.add_argument("--line", type=int, metavar="N",
                        help="only the header and line N (the header is line 1)")  # fmt: skip
    p_orig.add_argument("--to", metavar="PATH", help="write the file there (not over a file)")
    p_orig.set_defaults(func=cmd_batch_original)
    p_wd = batch_sub.add_parser(
        "withdraw",
        parents=[common],
        help="withdraw a loaded batch: its records leave core, a full audit and reports follow",
    )
    p_wd.add_argument("batch_id", metavar="BATCH_ID")
    p_wd.add_argument("--reason", required=True, metavar="TEXT", help="why (kept with the batch)")
    p_wd.add_argument("--by", required=True, metavar="NAME", help="who withdraws it")
    p_wd.add_argument("--out", required=True, metavar="DIR", help="the reports folder")
    p_wd.add_argument("--policy", metavar="FILE", help="as for run")
    p_wd.add_argument("--shared", action="store_true", help="as for run")
    p_wd.set_defaults(func=cmd_batch_withdraw)

    p_conv = sub.add_parser(
        "convert", parents=[common], help="convert an OMOP, Synthea or FHIR R4 export to a batch"
    )
    p_conv.add_argument("--from", dest="source", required=True, choices=("omop", "synthea", "fhir"))
    p_conv.add_argument("--order-supply-days", type=int, metavar="N",
                        help="FHIR: the supply of an order that gives none (30)")  # fmt: skip
    p_conv.add_argument("src_dir", metavar="SRC_DIR")
    p_conv.add_argument("--out", required=True, metavar="BATCH_DIR")
    p_conv.add_argument("--as-of", metavar="DATE", help="the extract's as_of (latest date seen)")
    p_conv.add_argument("--site", metavar="SITE", help="the site of every record")
    p_conv.add_argument("--history-from", metavar="DATE",
                        help="the first date the extract covers (the batch's history_from)")  # fmt: skip
    p_conv.set_defaults(func=cmd_convert)

    p_demo = sub.add_parser(
        "demo", parents=[common], help="run the Airflow DAGs on a synthetic cohort"
    )
    p_demo.add_argument("--patients", type=int, default=2000, metavar="N")
    p_demo.add_argument("--seed", type=int, default=42, metavar="S")
    p_demo.add_argument("--out", default="reports", metavar="DIR", help="reports folder")
    p_demo.set_defaults(func=cmd_demo)

    p_gen = sub.add_parser(
        "generate", parents=[common], help="write a synthetic batch with planted problems"
    )
    p_gen.add_argument("--patients", type=int, required=True, metavar="N")
    p_gen.add_argument("--seed", type=int, default=1, metavar="S")
    p_gen.add_argument("--out", required=True, metavar="DIR", help="the batch folder to write")
    p_gen.add_argument("--as-of", metavar="DATE", help="the extract's as_of (2025-12-31)")
    p_gen.add_argument(
        "--format", choices=("native", "fhir"), default="native",
        help="native batch (default) or the same cohort as a FHIR R4 bulk export",
    )  # fmt: skip
    p_gen.set_defaults(func=cmd_generate)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.func(args)
    except psycopg_operational() as exc:  # the database went away mid-run
        if args.debug:
            traceback.print_exc()
        print(f"rxaudit: lost the connection to the database ({type(exc).__name__})",
              file=sys.stderr)  # fmt: skip
        return 4
    except RxauditError as exc:  # BatchRejected among them
        if args.debug:
            traceback.print_exc()
        print(f"rxaudit: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        if args.debug:
            traceback.print_exc()
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(f"rxaudit: {exc.strerror or type(exc).__name__}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("rxaudit: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place that turns bugs into a sentence
        if args.debug:
            # the traceback, then the same clean exit (the embedded server is
            # stopped by its own exit handler, not torn down mid-exception)
            traceback.print_exc()
        print(
            f"rxaudit: internal error ({type(exc).__name__}); run again with --debug for details",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
