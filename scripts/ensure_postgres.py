"""Make sure a PostgreSQL server answers at the configured admin URL; start a private one if not.

The admin URL comes from `study.config.pg_admin_url()` (`$CONVIS_PG_ADMIN_URL`, else the URL this
script wrote to `<data dir>/pg/admin_url`, else postgres@127.0.0.1:5432). It is checked with a
real connection. When nothing usable answers there:

* the configuration was explicit (`$CONVIS_PG_ADMIN_URL`) and points at this machine
  (127.0.0.1/localhost) on a free port: a private cluster is started on exactly that port;
* it was not explicit: a private cluster is started on a free port from 5433 up;
* it was explicit and points elsewhere, or its port is taken by something else: stop with a
  message saying what to change (never a silent substitute).

The private cluster lives in `<data dir>/pg/cluster` (Debian's `postgresql` is installed with
apt when no server binaries are found), listens on 127.0.0.1 only with trust authentication and
no Unix socket, logs to `<data dir>/pg/postgres.log`, and runs as an unprivileged user (the
`postgres` system user when this runs as root: initdb and postgres refuse root). Its URL is
written to `<data dir>/pg/admin_url`. A stopped cluster (after a reboot) is started again.

Run by `scripts/setup.sh` (idempotent: one connection when all is well).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402
from psycopg.conninfo import conninfo_to_dict  # noqa: E402

from study.config import data_dir, pg_admin_url  # noqa: E402

LOCAL_HOSTS = {"127.0.0.1", "localhost"}
FIRST_FREE_PORT = 5433
SERVICE_USER = "postgres"


def say(msg: str) -> None:
    print(f"[setup] {msg}", file=sys.stderr, flush=True)


def die(msg: str) -> None:
    say(f"PostgreSQL: {msg}")
    sys.exit(1)


def shown(url: str) -> str:
    """The URL without its password, for messages."""
    password = str(conninfo_to_dict(url).get("password") or "")
    return url.replace(quote(password, safe=""), "***").replace(password, "***") if password else url


def problem(url: str) -> str | None:
    """None when a real connection to `url` works, else why not."""
    try:
        with psycopg.connect(url, connect_timeout=3, autocommit=True) as conn:
            conn.execute("SELECT 1")
        return None
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def port_free(port: int) -> bool:
    """Nothing listens on 127.0.0.1:port (SO_REUSEADDR, as postgres binds: TIME_WAIT leftovers
    of a stopped server do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def server_bin() -> Path | None:
    """The folder holding initdb/pg_ctl: Debian's newest /usr/lib/postgresql/N/bin, else PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    which = shutil.which("initdb")
    return Path(which).parent if which else None


def install_server() -> Path:
    root = os.geteuid() == 0
    if not root and not shutil.which("sudo"):
        die("no server binaries (initdb) found: install Debian's postgresql with apt-get as root")
    sudo = [] if root else ["sudo"]
    say("installing Debian's postgresql (server binaries for a private test cluster)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "postgresql"], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    found = server_bin()
    if found is None:
        die("apt-get installed postgresql but no initdb was found")
    return found


def service_user() -> str | None:
    """The user the cluster runs as: None (this user) unless root, else the `postgres` system user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        say(f"creating system user {SERVICE_USER} (PostgreSQL refuses to run as root)")
        subprocess.run(["useradd", "--system", "--user-group", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", SERVICE_USER], check=True)
    return SERVICE_USER


class Cluster:
    def __init__(self, folder: Path, bindir: Path, user: str | None) -> None:
        self.dir, self.bin, self.user = folder, bindir, user
        self.log = folder.parent / "postgres.log"

    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", self.user, "--"] if self.user else []
        return subprocess.run([*prefix, *cmd], cwd="/", check=check, text=True, capture_output=True)

    def give(self, path: Path) -> None:
        if self.user:
            shutil.chown(path, self.user, self.user)

    def ready_made(self) -> bool:
        return (self.dir / "PG_VERSION").is_file()

    def init(self, superuser: str) -> None:
        say(f"initialising a private PostgreSQL cluster in {self.dir}")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o700)
        self.give(self.dir)
        if self.run("test", "-w", str(self.dir), check=False).returncode != 0:
            die(f"user {self.user} cannot reach {self.dir} (a parent folder is closed to it): "
                "set CONVIS_DATA_DIR to a folder it can reach, or run setup as an ordinary user")
        done = self.run(str(self.bin / "initdb"), "-D", str(self.dir), "-U", superuser,
                        "--auth=trust", "--encoding=UTF8", "--no-locale", check=False)
        if done.returncode != 0:
            die(f"initdb failed:\n{done.stdout}{done.stderr}")
        (self.dir / "pg_hba.conf").write_text(
            "# Private ConVis test cluster (scripts/ensure_postgres.py): trust, 127.0.0.1 only.\n"
            "host all all 127.0.0.1/32 trust\n"
            "host replication all 127.0.0.1/32 trust\n")
        with open(self.dir / "postgresql.conf", "a") as conf:
            conf.write("\n# ConVis: address and port, rewritten at each start\ninclude = 'convis.conf'\n")
        for name in ("pg_hba.conf", "postgresql.conf"):
            self.give(self.dir / name)

    def running_port(self) -> int | None:
        if self.run(str(self.bin / "pg_ctl"), "status", "-D", str(self.dir), check=False).returncode != 0:
            return None
        lines = (self.dir / "postmaster.pid").read_text().splitlines()
        return int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None

    def stop(self) -> None:
        self.run(str(self.bin / "pg_ctl"), "stop", "-D", str(self.dir), "-m", "fast", "-w")

    def start(self, port: int) -> None:
        conf = self.dir / "convis.conf"
        conf.write_text(f"listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = ''\n")
        self.give(conf)
        self.log.touch()
        self.give(self.log)
        say(f"starting the private PostgreSQL cluster on 127.0.0.1:{port} (log: {self.log})")
        done = self.run(str(self.bin / "pg_ctl"), "start", "-D", str(self.dir), "-l", str(self.log),
                        "-w", "-t", "60", check=False)
        if done.returncode != 0:
            tail = "".join(self.log.read_text(errors="replace").splitlines(True)[-15:])
            die(f"pg_ctl start failed:\n{done.stdout}{done.stderr}\n{self.log}:\n{tail}")


def main() -> None:
    url = pg_admin_url()
    explicit = bool(os.environ.get("CONVIS_PG_ADMIN_URL", "").strip())
    why = problem(url)
    if why is None:
        return
    info = conninfo_to_dict(url)
    host, want_port = str(info.get("host") or ""), int(info.get("port") or 5432)
    superuser = str(info.get("user") or SERVICE_USER)
    dbname = str(info.get("dbname") or "postgres")
    if explicit and host not in LOCAL_HOSTS:
        die(f"CONVIS_PG_ADMIN_URL={shown(url)} does not answer ({why}). Start that server, or point "
            "CONVIS_PG_ADMIN_URL at 127.0.0.1 (or unset it) to let setup start a private cluster.")
    say(f"no usable PostgreSQL at {shown(url)} ({why}): using a private cluster")

    bindir = server_bin() or install_server()
    folder = data_dir() / "pg" / "cluster"
    folder.parent.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(folder, bindir, service_user())
    if not cluster.ready_made():
        cluster.init(superuser)

    port = cluster.running_port()
    if explicit and port != want_port and not port_free(want_port):
        die(f"CONVIS_PG_ADMIN_URL={shown(url)} does not answer ({why}) and port {want_port} "
            "is taken by something else: point CONVIS_PG_ADMIN_URL at a free port or unset it.")
    if port is not None and explicit and port != want_port:
        say(f"moving the private cluster from port {port} to {want_port}")
        cluster.stop()
        port = None
    if port is None:
        if explicit:
            port = want_port
        else:
            # the port this script wrote last time (kept across reboots when still free), else the first free one
            last = [want_port] if (folder.parent / "admin_url").is_file() else []
            candidates = last + list(range(FIRST_FREE_PORT, FIRST_FREE_PORT + 200))
            port = next((p for p in candidates if port_free(p)), None)
            if port is None:
                die(f"no free port in {FIRST_FREE_PORT}-{FIRST_FREE_PORT + 199} for a private cluster")
        cluster.start(port)

    admin = f"postgresql://{quote(superuser, safe='')}@127.0.0.1:{port}/postgres"
    if dbname != "postgres":
        with psycopg.connect(admin, connect_timeout=5, autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone() is None:
                conn.execute(f'CREATE DATABASE "{dbname}"')
    final = f"postgresql://{quote(superuser, safe='')}@127.0.0.1:{port}/{quote(dbname, safe='')}"
    why = problem(final)
    if why is not None:
        die(f"the private cluster was started but {final} does not answer ({why}); see {cluster.log}")
    (folder.parent / "admin_url").write_text(final + "\n")
    say(f"PostgreSQL admin URL: {final} (written to {folder.parent / 'admin_url'})")
    if explicit and final != url:
        say(f"note: CONVIS_PG_ADMIN_URL is {shown(url)}; the tests use it as given")


if __name__ == "__main__":
    main()
