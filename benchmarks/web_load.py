"""The workspace under load: page times of one user, then of 20 at once.

    python benchmarks/web_load.py --patients 100000 [--users 20] [--rounds 10]

Loads the cached cohort of benchmarks/pipeline.py into a scratch database
(DATABASE_URL's server, as a superuser), makes a web login and one account
per simulated user (an auditor: every site, the largest lists), starts
``rxaudit serve`` on 127.0.0.1 in a child process, then

(a) one user: each page ten times (overview, worklist page of 100, a
    filtered worklist page, a case page), median and worst;
(b) ``--users`` users at once, each signed in, each doing ``--rounds`` rounds
    of the four pages: 50th and 95th percentile and errors.

Times are wall-clock seconds of each request from the client on the same
host (server time plus a loopback round trip). The last line is one JSON
object. The scratch database is dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from audit import db, pipeline  # noqa: E402
from audit.ingest import LoadSettings  # noqa: E402
from benchmarks.pipeline import cohort, drop_db, scratch_db  # noqa: E402

PASSWORD = "benchmark-password"


def sign_in(client: httpx.Client, name: str) -> None:
    form = client.get("/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    r = client.post("/login", data={"username": name, "password": PASSWORD, "csrf_token": token})
    if r.status_code != 303:
        raise SystemExit(f"sign-in of {name} failed ({r.status_code})")


def timed(client: httpx.Client, path: str) -> tuple[float, bool]:
    t = time.perf_counter()
    r = client.get(path)
    return time.perf_counter() - t, r.status_code == 200


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    admin = os.environ.get("DATABASE_URL")
    if not admin:
        raise SystemExit("set DATABASE_URL to a server where a superuser may make a database")
    name = f"rxaudit_web_bench_{os.getpid()}"
    login = f"rxaudit_web_bench_{os.getpid()}"
    url = scratch_db(admin, name)
    web_password = secrets.token_hex(12)
    server = None
    try:
        os.environ["DATABASE_URL"] = url
        print("loading the cohort", file=sys.stderr)
        pipeline.run([cohort(args.patients, args.seed)], Path(f"/tmp/{name}-reports"),
                     settings=LoadSettings())  # fmt: skip
        from audit import users

        for i in range(args.users):
            users.add(f"user{i:02d}", "auditor", [], PASSWORD)
        with psycopg.connect(db.to_libpq(admin), autocommit=True) as conn:
            conn.execute(sql.SQL("create role {} login password {} in role rxaudit_web").format(
                sql.Identifier(login), sql.Literal(web_password)))  # fmt: skip
        with psycopg.connect(url) as conn:
            case_ids = [r[0] for r in conn.execute(
                "select case_id from audit.cases where status = 'open' order by case_id limit 200")]  # fmt: skip
            rule = conn.execute(
                "select rule_id from audit.cases group by 1 order by count(*) desc limit 1"
            ).fetchone()[0]
            open_cases = conn.execute(
                "select count(*) from audit.cases where status = 'open'"
            ).fetchone()[0]
        web_url = psycopg.conninfo.make_conninfo(
            db.to_libpq(url), user=login, password=web_password
        )
        env = {**os.environ, "RXAUDIT_WEB_DATABASE_URL": web_url, "RXAUDIT_WEB_SECRET": "bench"}
        server = subprocess.Popen(
            [sys.executable, "-m", "audit", "serve", "--port", str(args.port)], env=env, cwd=ROOT
        )
        base = f"http://127.0.0.1:{args.port}"
        for _ in range(200):
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        pages = {
            "overview": "/",
            "worklist": "/cases",
            "filtered worklist": f"/cases?rule={rule}&status=open",
            "case page": None,
        }

        def path_of(kind: str, k: int) -> str:
            return pages[kind] or f"/cases/{case_ids[k % len(case_ids)]}"

        single: dict[str, list[float]] = {k: [] for k in pages}
        with httpx.Client(base_url=base, timeout=60) as c:
            sign_in(c, "user00")
            for k in range(10):
                for kind in pages:
                    single[kind].append(timed(c, path_of(kind, k))[0])

        def one_user(i: int) -> list[tuple[float, bool]]:
            out = []
            with httpx.Client(base_url=base, timeout=60) as c:
                sign_in(c, f"user{i:02d}")
                for k in range(args.rounds):
                    for kind in pages:
                        out.append(timed(c, path_of(kind, i * 31 + k)))
            return out

        t = time.perf_counter()
        with ThreadPoolExecutor(args.users) as pool:
            results = [r for rs in pool.map(one_user, range(args.users)) for r in rs]
        wall = time.perf_counter() - t
        times = sorted(r[0] for r in results)
        errors = sum(1 for r in results if not r[1])
        q = statistics.quantiles(times, n=100)
        print(json.dumps({
            "patients": args.patients, "open_cases": open_cases,
            "single_user_ms": {k: {"median": round(statistics.median(v) * 1000),
                                   "max": round(max(v) * 1000)} for k, v in single.items()},
            "concurrent": {"users": args.users, "requests": len(results), "errors": errors,
                           "p50_ms": round(q[49] * 1000), "p95_ms": round(q[94] * 1000),
                           "requests_per_s": round(len(results) / wall, 1)},
        }))  # fmt: skip
        return 0
    finally:
        if server:
            server.kill()
            server.wait(10)
        os.environ["DATABASE_URL"] = admin
        drop_db(admin, name)
        with psycopg.connect(db.to_libpq(admin), autocommit=True) as conn:
            conn.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(login)))


if __name__ == "__main__":
    raise SystemExit(main())
