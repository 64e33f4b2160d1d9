"""One project: pinned installs, guarded library internals, one licence, one version per package."""

import importlib
import inspect
import json
import re
import subprocess
import time
import tomllib
from importlib.metadata import distribution, requires, version

import uvicorn.protocols.http.httptools_impl as httptools_impl
import uvicorn.server
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from uvicorn.server import ServerState

import persistd
from persistd.protocol import HttpProtocol
from tests.support import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
CLIENT_PYPROJECT = tomllib.loads((ROOT / "client" / "python" / "pyproject.toml").read_text())
PACKAGE_JSON = json.loads((ROOT / "client" / "typescript" / "package.json").read_text())


def pinned() -> dict[str, str]:
    """constraints.txt as {canonical name: version}."""
    pins: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, pin = line.partition("==")
            assert sep, f"constraints.txt: {line!r} is not pinned with =="
            pins[canonicalize_name(name)] = pin
    return pins


# ---- uvicorn internals that app/protocol.py overrides ----


def test_uvicorn_is_bounded_and_the_installed_release_is_within_the_bound() -> None:
    spec = next(Requirement(r) for r in PYPROJECT["project"]["dependencies"] if "uvicorn" in r)
    assert any(s.operator == "<" for s in spec.specifier), "uvicorn needs an upper bound"
    assert spec.specifier.contains(version("uvicorn")), version("uvicorn")


# Each method HttpProtocol overrides, and how uvicorn (or asyncio) reaches it.
OVERRIDES = {
    "__init__": "server",  # uvicorn's server builds the protocol (checked below)
    "connection_made": "asyncio",
    "connection_lost": "asyncio",
    "data_received": "asyncio",
    "on_headers_complete": "httptools",  # parser callbacks, found by name
    "send_400_response": "self.send_400_response(",
    "on_response_complete": "on_response=self.on_response_complete",
    "shutdown": "server",  # uvicorn's server, on a graceful stop (checked below)
}

# uvicorn internals the overrides read or call.
INTERNALS = [
    "self.connections = ",
    "self.tasks = ",
    "self.pipeline",
    "self.cycle",
    "def _unset_keepalive_if_required(self)",
    "self.more_body = ",
    "self.response_complete = ",
    "self.flow = ",
]


def test_every_method_the_protocol_overrides_still_exists_in_uvicorn_and_is_called() -> None:
    """An override is a silent no-op if uvicorn renames the method, changes its parameters or
    stops calling it: fail here instead."""
    base = httptools_impl.HttpToolsProtocol
    overridden = {
        name
        for name, member in vars(HttpProtocol).items()
        if callable(member) and hasattr(base, name)
    }
    assert overridden == set(OVERRIDES), f"update OVERRIDES: the protocol overrides {overridden}"
    module_source = inspect.getsource(httptools_impl)
    for name, caller in OVERRIDES.items():
        ours = list(inspect.signature(getattr(HttpProtocol, name)).parameters)
        theirs = list(inspect.signature(getattr(base, name)).parameters)
        assert ours == theirs, f"{name}: uvicorn's parameters are now {theirs}"
        if caller not in ("asyncio", "httptools", "server"):
            assert caller in module_source, f"uvicorn no longer reaches {name} by {caller!r}"
    server_source = inspect.getsource(uvicorn.server)
    assert "config.http_protocol_class(" in server_source, "uvicorn builds its protocol otherwise"
    assert "connection.shutdown()" in server_source, "uvicorn stops its connections otherwise"
    for internal in INTERNALS:
        assert internal in module_source, f"uvicorn's protocol no longer has {internal!r}"


def test_the_protocol_state_the_override_reads_is_still_there() -> None:
    source = inspect.getsource(HttpProtocol)
    assert "self.server_state.default_headers" in source  # what the override reads
    assert isinstance(ServerState().default_headers, list)
    init = inspect.getsource(httptools_impl.HttpToolsProtocol.__init__)
    assert "self.server_state = server_state" in init
    assert "def connection_made" in inspect.getsource(httptools_impl.HttpToolsProtocol)


# ---- reproducible installs ----


def test_constraints_pin_every_installed_dependency_at_the_installed_version() -> None:
    pins = pinned()
    seen: set[str] = set()
    todo = [("persistd", {"test", "embedded"}), ("persistd-client", {"test"})]
    while todo:
        name, extras = todo.pop()
        for text in requires(name) or []:
            req = Requirement(text)
            envs = [{"extra": e} for e in extras or {""}]
            if req.marker and not any(req.marker.evaluate(env) for env in envs):
                continue
            dep = canonicalize_name(req.name)
            if dep in seen or dep in ("persistd", "persistd-client"):
                continue
            seen.add(dep)
            assert dep in pins, f"{dep} (needed by {name}) is not in constraints.txt"
            installed = distribution(dep).version
            assert pins[dep] == installed, f"{dep}: pinned {pins[dep]}, installed {installed}"
            todo.append((dep, set(req.extras)))
    assert {"uvicorn", "fastapi", "asyncpg", "sqlalchemy", "alembic"} <= seen


def test_bootstrap_and_the_image_install_with_the_constraints() -> None:
    bootstrap = (ROOT / "scripts" / "bootstrap").read_text()
    assert re.search(r"pip install .*-c constraints\.txt -e \"\.\[test\]\"", bootstrap)
    dockerfile = (ROOT / "Dockerfile").read_text()
    installs = re.findall(r"pip install[^\n]*", dockerfile)
    assert installs and all("-c constraints.txt" in line for line in installs), installs


# ---- one licence, one version each ----


def test_one_licence_for_all_three_packages() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    for copy in ("client/python/LICENSE", "client/typescript/LICENSE"):
        assert (ROOT / copy).read_text() == text, f"{copy} differs from LICENSE"
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    assert PYPROJECT["project"]["license-files"] == ["LICENSE"]
    assert CLIENT_PYPROJECT["project"]["license"] == "Apache-2.0"
    assert CLIENT_PYPROJECT["project"]["license-files"] == ["LICENSE"]
    assert PACKAGE_JSON["license"] == "Apache-2.0"
    assert "LICENSE" in PACKAGE_JSON["files"]


def test_each_version_is_written_once() -> None:
    assert persistd.__version__ == PYPROJECT["project"]["version"] == version("persistd")
    assert "version" in CLIENT_PYPROJECT["project"]["dynamic"]
    # (imported by name: the client is its own distribution, outside this tree's type check)
    client = importlib.import_module("persistd_client")
    assert client.__version__ == version("persistd-client")
    literal = re.compile(r"""["']\d+\.\d+\.\d+["']""")
    assert not literal.search((ROOT / "app" / "__init__.py").read_text())
    # The TypeScript package's version is its package.json; nothing in src repeats it.
    for source in (ROOT / "client" / "typescript" / "src").rglob("*.ts"):
        assert PACKAGE_JSON["version"] not in source.read_text(), source


def test_changelog_keeps_a_changelog_with_this_release_and_the_last() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    assert text.startswith("# Changelog")
    assert "https://keepachangelog.com/en/1.1.0/" in text
    headings = re.findall(r"^## \[([^\]]+)\]", text, re.M)
    assert headings[0] == "Unreleased"
    assert PYPROJECT["project"]["version"] in headings
    for section in re.findall(r"^### (\w+)", text, re.M):
        assert section in {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}


# ---- the setup commands ----


def test_bootstrap_installs_only_named_system_packages_without_recommends() -> None:
    bootstrap = (ROOT / "scripts" / "bootstrap").read_text()
    packages = re.findall(r"need_apt\+=\(([\w.-]+)\)", bootstrap)
    assert {"chromium", "docker-compose", "postgresql-contrib", "wrk"} <= set(packages)
    assert "apt-get install -y -qq --no-install-recommends" in bootstrap
    readme = (ROOT / "README.md").read_text()
    for package in packages:
        assert f"`{package}`" in readme, f"add {package} to the README's system packages"


def test_a_second_bootstrap_on_a_prepared_tree_skips_pip_and_npm() -> None:
    started = time.monotonic()
    done = subprocess.run(
        [str(ROOT / "scripts" / "bootstrap")],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    # The first run (if a lock file changed since the stamp) installs; the second must not.
    if "nothing changed" not in done.stdout:
        started = time.monotonic()
        done = subprocess.run(
            [str(ROOT / "scripts" / "bootstrap")],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    assert "nothing changed" in done.stdout, done.stdout + done.stderr
    assert time.monotonic() - started < 5


def test_the_embedded_data_folder_is_ignored_by_git() -> None:
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "persistd-data/pgdata/PG_VERSION"], cwd=ROOT, check=False
    )
    assert ignored.returncode == 0
