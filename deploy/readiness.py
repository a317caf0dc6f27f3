"""Readiness of a ConVis Studio deployment: every app process answers and the database does.

    python deploy/readiness.py --ports 8601-8604 [--host 127.0.0.1] [--proxy http://127.0.0.1:8080]

For each port: Streamlit's ``/_stcore/health`` must answer ``ok``. Then one round trip to the
study database through study's public API (`study.db.connect` + `study.overview.study_rows`,
the query the Studies page runs) on ``--db`` or ``$DATABASE_URL``. With ``--proxy``, the health
check also through the reverse proxy. Prints one line per check and exits 0 only when all pass
(use it as a load balancer's or an orchestrator's readiness probe).
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def ports(spec: str) -> list[int]:
    """``8601-8604`` or ``8601,8603``."""
    out: list[int] = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def health(url: str, timeout: float) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/_stcore/health", timeout=timeout) as resp:
            body = resp.read().decode(errors="replace").strip()
            return resp.status == 200 and body == "ok", f"HTTP {resp.status} {body[:40]!r}"
    except (urllib.error.URLError, OSError) as exc:
        return False, str(getattr(exc, "reason", exc))


def database(url: str | None) -> tuple[bool, str]:
    from study.db import connect
    from study.overview import study_rows

    t0 = time.perf_counter()
    try:
        rows = study_rows(connect(url))
    except Exception as exc:  # noqa: BLE001  any failure means not ready; say which
        return False, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return True, f"{len(rows)} studies, {1000 * (time.perf_counter() - t0):.0f} ms"


def check(port_list: list[int], host: str, db_url: str | None, proxy: str | None, timeout: float) -> bool:
    ok = True
    targets = [(f"app :{p}", f"http://{host}:{p}") for p in port_list]
    if proxy:
        targets.append(("proxy", proxy))
    for name, url in targets:
        good, detail = health(url, timeout)
        ok &= good
        print(f"{'ok  ' if good else 'FAIL'} {name:<10} {url}/_stcore/health: {detail}")
    good, detail = database(db_url)
    ok &= good
    print(f"{'ok  ' if good else 'FAIL'} database   {detail}")
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ports", default="8601-8602", help="app ports: 8601-8604 or 8601,8603")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--db", help="database URL (default $DATABASE_URL)")
    ap.add_argument("--proxy", help="the reverse proxy's URL, checked too")
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--wait", type=float, default=0.0, help="retry for up to this many seconds")
    args = ap.parse_args(argv)
    try:
        port_list = ports(args.ports)
    except ValueError:
        ap.error(f"--ports: expected e.g. 8601-8604 or 8601,8603, got {args.ports!r}")
    deadline = time.monotonic() + args.wait
    while True:
        if check(port_list, args.host, args.db, args.proxy, args.timeout):
            return 0
        if time.monotonic() >= deadline:
            return 1
        time.sleep(1.0)


if __name__ == "__main__":
    sys.exit(main())
