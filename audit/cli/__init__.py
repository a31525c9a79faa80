"""The ``rxaudit`` command line.

Every command prints progress on stderr and ends with a one-line summary on
stdout. Errors are one sentence on stderr and an exit code (0 success,
1 internal error, 2 usage error, 3 a batch was rejected, 4 the database cannot
be reached); a traceback only with ``--debug``.
"""

from __future__ import annotations

import logging
import sys
import traceback

from audit.cli.parser import build_parser
from audit.errors import RxauditError


def psycopg_operational() -> type[Exception]:
    """psycopg's OperationalError (imported late: the CLI starts fast)."""
    import psycopg

    return psycopg.OperationalError


def _where() -> str:
    """The database in use, as host:port/dbname (never a password)."""
    import os

    from audit import db

    url = os.environ.get("DATABASE_URL")
    return db.describe(url) if url else f"the embedded server in {db.home_dir()}"


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
        print(f"rxaudit: lost the connection to the database at {_where()}"
              f" ({type(exc).__name__}): what it was doing was rolled back;"
              " run the command again when the database is back", file=sys.stderr)  # fmt: skip
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
