"""The ``rxaudit`` argument parser: every command, its options and help."""

from __future__ import annotations

import argparse

from audit import __version__
from audit.cli.commands import (  # noqa: F401 - the parser wires every command
    REVIEW_STATUSES,
    cmd_batch_original,
    cmd_batch_show,
    cmd_batch_withdraw,
    cmd_batches,
    cmd_cases,
    cmd_convert,
    cmd_db_upgrade,
    cmd_demo,
    cmd_generate,
    cmd_review,
    cmd_run,
    cmd_serve,
    cmd_users_add,
    cmd_users_disable,
    cmd_users_enable,
    cmd_users_list,
    cmd_users_set_password,
    cmd_users_set_sites,
)


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
        "add", parents=[common], help="create an account (an existing name is refused)"
    )
    p_uadd.add_argument("name", metavar="NAME")
    p_uadd.add_argument("--role", required=True, choices=("reviewer", "lead", "auditor"))
    p_uadd.add_argument("--site", action="append", default=[], metavar="SITE",
                        help="a site whose patients the account may see (repeat)")  # fmt: skip
    p_uadd.add_argument("--password-stdin", action="store_true", required=True,
                        help="read the password from standard input (never an argument)")  # fmt: skip
    p_uadd.set_defaults(func=cmd_users_add)
    p_upw = users_sub.add_parser(
        "set-password", parents=[common], help="change a password; every session of the user ends"
    )
    p_upw.add_argument("name", metavar="NAME")
    p_upw.add_argument("--password-stdin", action="store_true", required=True,
                       help="read the password from standard input (never an argument)")  # fmt: skip
    p_upw.set_defaults(func=cmd_users_set_password)
    p_uen = users_sub.add_parser("enable", parents=[common], help="enable a disabled account")
    p_uen.add_argument("name", metavar="NAME")
    p_uen.set_defaults(func=cmd_users_enable)
    p_ulist = users_sub.add_parser("list", parents=[common], help="the accounts (no password)")
    p_ulist.set_defaults(func=cmd_users_list)
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
    p_serve.add_argument("--insecure-dev", action="store_true",
                         help="allow a superuser or the pipeline's login (a local trial only;"
                              " every page says so)")  # fmt: skip
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
