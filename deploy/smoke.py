"""Smoke test of the deploy setup on this machine: N app processes (deploy/start_apps.sh) on a
scratch PostgreSQL database behind nginx with deploy/nginx.conf (ports rewritten to free ones),
then readiness through the proxy, a websocket upgrade of /_stcore/stream through the proxy, and
that one client address always reaches the same process. Needs nginx and a PostgreSQL server
(CONVIS_PG_ADMIN_URL, as the tests). Stops everything it started.

    .venv/bin/python deploy/smoke.py [--apps 2]
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def websocket_upgrade(port: int) -> str:
    """The status line nginx answers to a websocket handshake on /_stcore/stream."""
    key = base64.b64encode(os.urandom(16)).decode()
    req = (f"GET /_stcore/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
           f"Origin: http://127.0.0.1:{port}\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(req.encode())
        return s.recv(4096).decode(errors="replace").splitlines()[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--apps", type=int, default=2)
    a = ap.parse_args()
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        sys.exit("nginx is not installed (Debian: apt-get install -y nginx)")
    from study.config import pg_admin_url
    from study.db import scratch_postgres

    tmp = Path(tempfile.mkdtemp(prefix="convis-deploy-"))
    data = tmp / "data"
    (data / "cache").mkdir(parents=True)
    (data / "nltk_data").symlink_to(ROOT / ".data" / "nltk_data")
    base, proxy = free_port(), free_port()
    ports = list(range(base, base + a.apps))
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    servers = "".join(f"        server 127.0.0.1:{p} max_fails=2 fail_timeout=10s;\n" for p in ports)
    conf = re.sub(r"(        server 127\.0\.0\.1:\d+ max_fails=2 fail_timeout=10s;\n)+", servers, conf)
    conf = conf.replace("listen 8080;", f"listen 127.0.0.1:{proxy};").replace("/tmp/convis-nginx", str(tmp / "nginx"))
    # here only (it names internal addresses): say which process answered, to check stickiness
    conf = conf.replace("            proxy_read_timeout 120s;\n",
                        "            proxy_read_timeout 120s;\n            add_header X-Convis-Upstream $upstream_addr always;\n")
    assert "X-Convis-Upstream" in conf
    (tmp / "nginx.conf").write_text(conf)
    ok = True
    with scratch_postgres(pg_admin_url(), "convis_deploy") as url:
        env = {**os.environ, "DATABASE_URL": url, "CONVIS_DATA_DIR": str(data), "CONVIS_DEMO": "0",
               "CONVIS_PID_KEY": "ab" * 32, "CONVIS_ADMIN_PASSWORD": "deploy-smoke"}
        try:
            subprocess.run([str(ROOT / "deploy" / "start_apps.sh"), "start", str(a.apps), str(base)], env=env,
                           check=True)
            subprocess.run([nginx, "-t", "-c", str(tmp / "nginx.conf")], check=True)
            subprocess.run([nginx, "-c", str(tmp / "nginx.conf")], check=True)
            ready = subprocess.run([sys.executable, str(ROOT / "deploy" / "readiness.py"), "--ports",
                                    f"{base}-{ports[-1]}", "--proxy", f"http://127.0.0.1:{proxy}", "--wait", "120"],
                                   env=env)
            ok &= ready.returncode == 0
            status = websocket_upgrade(proxy)
            print(f"websocket through nginx: {status}")
            ok &= " 101 " in status
            import urllib.request

            with urllib.request.urlopen(f"http://127.0.0.1:{proxy}/", timeout=10) as resp:
                page = resp.read()
            print(f"GET / through nginx: HTTP {resp.status}, {len(page)} bytes")
            ok &= resp.status == 200 and b"<title>" in page.lower()
            upstreams = set()
            for _ in range(10):
                with urllib.request.urlopen(f"http://127.0.0.1:{proxy}/_stcore/health", timeout=10) as resp:
                    upstreams.add(resp.headers.get("X-Convis-Upstream"))
            print(f"10 requests from one address reached: {sorted(upstreams)}")
            ok &= len(upstreams) == 1 and None not in upstreams
            log = (tmp / "nginx-access.log")
            print(f"nginx access log lines: {len(log.read_text().splitlines()) if log.exists() else 0}")
        finally:
            pid = tmp / "nginx.pid"
            if pid.exists():
                subprocess.run([nginx, "-c", str(tmp / "nginx.conf"), "-s", "stop"])
            subprocess.run([str(ROOT / "deploy" / "start_apps.sh"), "stop"], env=env)
    print("smoke test:", "passed" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
