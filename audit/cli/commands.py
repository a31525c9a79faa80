"""The ``rxaudit`` commands: each parses nothing, does its one job, prints
progress on stderr and a one-line summary on stdout."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

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
                _, report = convert(args.source, src, out, _as_of(args.as_of), args.site,
                                    order_supply_days=args.order_supply_days,
                                    history_from=_date_arg(args.history_from,
                                                           "--history-from"))  # fmt: skip
                if not args.quiet:  # what the conversion kept, dropped and could not map
                    for line in report.lines():
                        print(line, file=sys.stderr)
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
    if not summary["cohort_patients"]:
        print(f"rxaudit: {_no_cohort(args.policy)}", file=sys.stderr)
    return 3 if counts["rejected"] else 0


def _no_cohort(policy_path: str | None) -> str:
    """Which diagnosis codes the audit looked for, when it found no patient."""
    from audit import policy

    pol = policy.load(Path(policy_path) if policy_path else None)
    cohort = pol.content["cohort"]
    icd = ", ".join(cohort["ptsd_icd10cm"]) or "none"
    snomed = ", ".join(cohort.get("ptsd_snomed") or []) or "none"
    return (f"no patient is in the PTSD cohort: the audit looked for diagnoses coded ICD-10-CM"
            f" {icd} or SNOMED CT {snomed} (policy {pol.version}, cohort.ptsd_icd10cm and"
            " cohort.ptsd_snomed); check the source's diagnosis codes and code systems")  # fmt: skip


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
        f" {restored} earlier version(s) current again (its files stay kept as they arrived);"
        f" full audit {summary['run_id']}: {summary['cases']['open']} open case(s);"
        f" report in {summary['report_dir']}"
    )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from audit import db
    from audit.web.app import create_app, server_options
    from audit.web.login import check_narrow, web_url

    if not 1 <= args.port <= 65535:
        raise UsageError("--port must be between 1 and 65535")
    url, own = web_url()
    insecure = check_narrow(url, args.insecure_dev)
    where = "the embedded database's own web login" if own else db.describe(url)
    print(f"rxaudit: the workspace listens on http://{args.host}:{args.port}/ (database:"
          f" {where}); Ctrl-C stops it", file=sys.stderr, flush=True)  # fmt: skip
    if insecure:
        print("rxaudit: WARNING --insecure-dev: this login is not bound by row-level"
              " security; every page says so", file=sys.stderr)  # fmt: skip
    app = create_app(url, insecure=insecure)
    if not args.quiet:
        from audit.web.guard import AccessLog

        app = AccessLog(app)  # requests on stderr, without ids or filters
    uvicorn.run(app, **server_options(args.host, args.port))
    return 0


def _read_password() -> str:
    return sys.stdin.readline().rstrip("\r\n")


def _warn(warnings: list[str]) -> None:
    for w in warnings:
        print(f"rxaudit: warning: {w}", file=sys.stderr)


def cmd_users_add(args: argparse.Namespace) -> int:
    from audit import users

    _warn(users.add(args.name, args.role, args.site, _read_password()))
    sites = ", ".join(args.site) if args.site else "every site"
    print(f"user {args.name}: {args.role} of {sites}")
    return 0


def cmd_users_set_password(args: argparse.Namespace) -> int:
    from audit import users

    users.set_password(args.name, _read_password())
    print(f"user {args.name}: password changed, every session ended")
    return 0


def cmd_users_disable(args: argparse.Namespace) -> int:
    from audit import users

    users.disable(args.name)
    print(f"user {args.name}: disabled, sessions ended")
    return 0


def cmd_users_enable(args: argparse.Namespace) -> int:
    from audit import users

    users.enable(args.name)
    print(f"user {args.name}: enabled")
    return 0


def cmd_users_set_sites(args: argparse.Namespace) -> int:
    from audit import users

    _warn(users.set_sites(args.name, args.site))
    print(f"user {args.name}: sites {', '.join(args.site) or '(none)'}")
    return 0


def cmd_users_list(args: argparse.Namespace) -> int:
    from audit import users
    from audit.cases import print_table

    rows = users.list_users()
    print_table(rows, sys.stdout, ("name", "role", "sites", "status", "changed"))
    print(f"{len(rows)} account(s)")
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
