"""The container files: lint the Dockerfile, check the compose chain, and run what the image runs.

There is no Docker engine in CI, so the image's own commands (pip install, `persistd migrate`,
the serve command, the healthcheck) run here from a clean virtual environment instead.
"""

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from persistd.embedded import free_port
from tests.support import ROOT, scratch_database

DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"


def tool(name: str) -> str:
    """A command-line tool from this interpreter's environment or PATH; fails loudly if absent."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} is not installed (pip install -e '.[test]')"
    return found


# ---- Dockerfile ----


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    found = instructions()
    last = max(i for i, (word, _) in enumerate(found) if word == "FROM")
    return found[last:]


def exec_form(args: str) -> list[str]:
    parsed = json.loads(args)
    assert isinstance(parsed, list) and all(isinstance(a, str) for a in parsed)
    return parsed


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for word, args in final_stage():
        if word == "ENV":
            for pair in shlex.split(args):
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def test_dockerfile_passes_hadolint() -> None:
    done = subprocess.run(
        [tool("hadolint"), str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_final_image_gets_the_installed_venv_and_no_source() -> None:
    copies = [args for word, args in final_stage() if word == "COPY"]
    assert copies == ["--from=build /opt/venv /opt/venv"]
    build = instructions()[: [w for w, _ in instructions()].index("FROM", 1)]
    install = " ".join(args for word, args in build if word == "RUN")
    assert "-e " not in install and "--editable" not in install
    assert "-c constraints.txt /wheels/persistd-" in install


def test_image_is_multi_stage_slim_and_runs_as_a_user() -> None:
    found = instructions()
    froms = [args for word, args in found if word == "FROM"]
    assert len(froms) >= 2
    assert all(f.startswith("python:3.11-slim") for f in froms)
    final = final_stage()
    users = [args for word, args in final if word == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert any(word == "HEALTHCHECK" and "/healthz" in args for word, args in final)
    cmd = next(args for word, args in final if word == "CMD")
    assert "persistd.main:create_app --factory" in " ".join(exec_form(cmd))
    assert "--http persistd.protocol:HttpProtocol" in " ".join(exec_form(cmd))
    assert "$PERSISTD_WORKERS" in cmd


# ---- docker-compose.yml ----


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def test_compose_runs_db_then_migrate_then_api(compose: dict[str, Any]) -> None:
    services = compose["services"]
    db, migrate, api = services["db"], services["migrate"], services["api"]
    assert db["image"].startswith("postgres:16")
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    volume = db["volumes"][0].split(":")[0]
    assert volume in compose["volumes"]  # a named volume, not a bind mount
    assert migrate["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert migrate["command"] == ["persistd", "migrate"]
    assert migrate["restart"] == "no"
    assert api["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
    assert "/healthz" in " ".join(api["healthcheck"]["test"])
    assert any(str(p).endswith(":8000") for p in api["ports"])
    assert migrate["image"] == api["image"]


def test_compose_takes_secrets_from_the_environment(compose: dict[str, Any]) -> None:
    text = COMPOSE.read_text()
    for service in compose["services"].values():
        for name, value in service.get("environment", {}).items():
            if "PASSWORD" in name or "DATABASE_URL" in name:
                assert "${POSTGRES_PASSWORD:?" in str(value), f"{name} holds a literal secret"
    # The only password anywhere is the required variable.
    assert re.findall(r"postgresql://[^:]+:([^@]+)@", text) == [
        "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
    ]


def test_docker_compose_config_resolves_the_file() -> None:
    """`docker-compose config` needs no engine; it checks the file the way compose reads it."""
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is not installed: apt-get install -y docker-compose"
    env = {**os.environ, "POSTGRES_PASSWORD": "from-the-environment"}
    done = subprocess.run(
        [binary, "-f", str(COMPOSE), "config"], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)
    api_env = resolved["services"]["api"]["environment"]
    assert "from-the-environment" in api_env["PERSISTD_DATABASE_URL"]
    missing = {k: v for k, v in os.environ.items() if k != "POSTGRES_PASSWORD"}
    done = subprocess.run(
        [binary, "-f", str(COMPOSE), "config"],
        capture_output=True,
        text=True,
        env=missing,
        check=False,
    )
    assert done.returncode != 0
    assert "set POSTGRES_PASSWORD" in done.stderr


def compose_config(env: dict[str, str]) -> dict[str, Any]:
    """The file as `docker-compose config` resolves it with exactly `env` set."""
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is not installed (scripts/bootstrap)"
    full = {"PATH": os.environ["PATH"], "POSTGRES_PASSWORD": "pw", **env}
    done = subprocess.run(
        [binary, "-f", str(COMPOSE), "config"],
        capture_output=True,
        text=True,
        env=full,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    resolved: dict[str, Any] = yaml.safe_load(done.stdout)
    return resolved


def documented_settings() -> set[str]:
    """The variables of docs/deploy.md's configuration reference."""
    text = (ROOT / "docs" / "deploy.md").read_text()
    table = text[text.index("## Configuration reference") :].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([A-Z_]+)`", table, re.M))


# Set by the image or the compose file itself, so not the operator's to pass in.
FIXED_IN_THE_IMAGE = {
    "PERSISTD_DATABASE_URL",
    "PERSISTD_HOST",
    "PERSISTD_PORT",
    "PERSISTD_DATA_DIR",
}


def test_compose_passes_every_documented_setting_to_the_api() -> None:
    wanted = documented_settings() - FIXED_IN_THE_IMAGE
    assert {"FORWARDED_ALLOW_IPS", "PROMETHEUS_MULTIPROC_DIR", "PERSISTD_AUTH_CACHE_TTL"} <= wanted
    assert "PERSISTD_GRACEFUL_TIMEOUT" in wanted
    marked = {name: f"set-{name.lower()}" for name in wanted}
    api_env = compose_config(marked)["services"]["api"]["environment"]
    for name in wanted:
        assert api_env.get(name) == marked[name], (
            f"{name} (docs/deploy.md) does not reach the api: add `{name}:` to its environment"
        )
    # Unset, a variable stays unset in the container (the image's or the service's default).
    api_env = compose_config({})["services"]["api"]["environment"]
    assert api_env["PERSISTD_WORKERS"] is None and api_env["PROMETHEUS_MULTIPROC_DIR"] is None


def test_compose_publishes_on_loopback_unless_the_operator_chooses() -> None:
    assert compose_config({})["services"]["api"]["ports"] == ["127.0.0.1:8000:8000/tcp"]
    chosen = compose_config({"PERSISTD_PUBLISH": "8000"})["services"]["api"]["ports"]
    assert len(chosen) == 1 and "127.0.0.1" not in str(chosen) and "8000" in str(chosen)


def test_compose_gives_the_metrics_folder_a_tmpfs(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]
    mounts = [entry.split(":")[0] for entry in api["tmpfs"]]
    assert "/run/persistd-metrics" in mounts
    assert (
        "PROMETHEUS_MULTIPROC_DIR=/run/persistd-metrics"
        in (ROOT / "docs" / "deploy.md").read_text()
    )
    grace = int(str(api["stop_grace_period"]).rstrip("s"))
    assert grace > int(image_env()["PERSISTD_GRACEFUL_TIMEOUT"])


def test_dockerignore_sends_only_what_the_image_needs() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert lines[lines.index("*")] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied: set[str] = set()
    for word, args in instructions():
        if word == "COPY" and "--from" not in args:
            copied.update(a.rstrip("/") for a in args.split()[:-1])
    assert copied <= allowed


# ---- the image's commands, from a clean virtual environment ----


@pytest.fixture
def fresh_database(database_url: str) -> Iterator[str]:
    """An empty database (no migrations yet), dropped afterwards."""
    with scratch_database(database_url, revision=None) as url:
        yield url


def test_image_commands_run_from_a_clean_virtualenv(tmp_path: Path, fresh_database: str) -> None:
    """The build stage's own RUN lines (wheel, venv, pinned install) with /opt/venv and /wheels
    moved into tmp_path; then the source copy is deleted, as the final image does not have it."""
    build = instructions()[: [w for w, _ in instructions()].index("FROM", 1)]
    srv, venv, wheels = tmp_path / "srv", tmp_path / "venv", tmp_path / "wheels"
    home = tmp_path / "home"  # the working directory of the final stage's commands
    srv.mkdir()
    home.mkdir()
    for word, args in build:  # COPY exactly what the build stage copies
        if word == "COPY":
            *sources, _ = args.split()
            for source in sources:
                src = ROOT / source
                if src.is_dir():
                    shutil.copytree(src, srv / source, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy2(src, srv / source)
    base_env = {
        # `python` of the build stage: this interpreter (it only builds a wheel and a venv).
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    for word, args in build:
        if word == "RUN":
            command = args.replace("/opt/venv", str(venv)).replace("/wheels", str(wheels))
            done = subprocess.run(
                ["sh", "-c", command],
                cwd=srv,
                env=base_env,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert [p.name.split("-")[0] for p in wheels.iterdir()] == ["persistd"]
    shutil.rmtree(srv)
    installed = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import persistd; print(persistd.__file__)"],
        cwd=home, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert Path(installed.stdout.strip()).is_relative_to(venv), installed.stdout

    port = free_port()
    env = {
        **base_env,
        **image_env(),
        "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "PERSISTD_DATABASE_URL": fresh_database,
        # The image binds 0.0.0.0; here the same command stays on loopback, with auth forced on
        # as `auto` would do on 0.0.0.0.
        "PERSISTD_HOST": "127.0.0.1",
        "PERSISTD_AUTH": "on",
        "PERSISTD_PORT": str(port),
        "PERSISTD_WORKERS": "2",
    }

    def run(args: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, cwd=home, env=env, capture_output=True, text=True, timeout=120, check=False
        )

    compose = yaml.safe_load(COMPOSE.read_text())
    migrated = run(compose["services"]["migrate"]["command"])
    assert migrated.returncode == 0, migrated.stderr
    created = run(["persistd", "token", "create", "--scope", "read,write", "--namespace", "bot-*"])
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()

    final = final_stage()
    serve = exec_form(next(a for w, a in final if w == "CMD"))
    server = subprocess.Popen(serve, cwd=home, env=env, start_new_session=False)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, "the serve command exited"
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the service never became ready"
            time.sleep(0.2)
        healthcheck = next(a for w, a in final if w == "HEALTHCHECK")
        probe = exec_form(healthcheck.split(" CMD ", 1)[1])
        assert run(probe).returncode == 0
        compose_probe = compose["services"]["api"]["healthcheck"]["test"][1:]
        compose_probe = [a.replace("8000", str(port)) for a in compose_probe]
        assert run(compose_probe).returncode == 0

        record = f"{url}/v1/bot-1/misc/e/records/k"
        assert httpx.put(record, json={"ok": True}).status_code == 401
        auth = {"Authorization": f"Bearer {token}"}
        assert httpx.put(record, json={"ok": True}, headers=auth).status_code == 201
        assert httpx.get(record, headers=auth).json() == {"ok": True}
        assert httpx.get(url + "/docs").status_code == 200
        assert "persistd_http_requests_total" in httpx.get(url + "/metrics").text
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            raise
    assert code in (0, -signal.SIGTERM)
    # And the healthcheck fails once the service is gone.
    assert run(probe).returncode != 0


def test_the_systemd_unit_in_the_docs_runs_commands_persistd_has() -> None:
    from persistd.cli import build_parser

    deploy = (ROOT / "docs" / "deploy.md").read_text()
    unit = re.search(r"^```ini\n(\[Unit\].*?)^```", deploy, re.M | re.S)
    assert unit, "docs/deploy.md has no systemd unit"
    lines = dict(
        line.split("=", 1) for line in unit.group(1).splitlines() if "=" in line and line[0] != "#"
    )
    program, *args = shlex.split(lines["ExecStart"])
    assert program == "/opt/persistd/bin/persistd"
    parsed = build_parser().parse_args(args)
    assert parsed.command == "serve" and parsed.host == "127.0.0.1"
    assert int(lines["TimeoutStopSec"]) > parsed.graceful_timeout
    assert lines["KillSignal"] == "SIGTERM"
    assert "PROMETHEUS_MULTIPROC_DIR=/run/" + lines["RuntimeDirectory"] in deploy
