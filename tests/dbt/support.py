"""Real dbt Core artifacts for the tests: `dbt build` of the tiny_shop project against the test PostgreSQL.

dbt runs from its own virtualenv (.local/dbt-venv of the checkout, created on first use, reused after), so its
pins never constrain ours. The session fixtures build each variant once: `dbt_artifacts` (one passing, one
warning and one failing data test) and `dbt_artifacts_fixed` (the data repaired: every test passes). A test
module gets them with `pytest_plugins = ("tests.dbt.support",)` (registered once, shared by every module).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from tests.support import recreate_database

CHECKOUT = Path(__file__).resolve().parents[2]
VENV = CHECKOUT / ".local" / "dbt-venv"
PROJECT = Path(__file__).resolve().with_name("tiny_shop")
# dbt-core 1.12 cannot be installed here (a dependency downloads a wheel at build time).
PINS = ("dbt-core>=1.11,<1.12", "dbt-postgres==1.11.0")
DATABASE, SCHEMA = "dbt_tiny_shop", "analytics"  # its own database: dbt never meets the suite's tables
BUILD_TIMEOUT_SECONDS = 600  # the machine is shared; one build takes about 6 s when idle


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Two test processes of one checkout never install into the same virtualenv at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def dbt_executable() -> Path:
    """The virtualenv's dbt, installing it first if it is missing or was installed with other pins."""
    stamp = VENV / ".pins"
    with _locked(VENV.with_name("dbt-venv.lock")):
        if not stamp.exists() or stamp.read_text() != "\n".join(PINS):
            shutil.rmtree(VENV, ignore_errors=True)  # a half-made one from an interrupted install
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
            subprocess.run([str(VENV / "bin" / "python"), "-m", "pip", "install", "-q", *PINS], check=True)
            stamp.write_text("\n".join(PINS))
    return VENV / "bin" / "dbt"


def _connection_env(dsn: str) -> dict[str, str]:
    url = urlsplit(dsn)
    return {
        "TINY_SHOP_PG_HOST": url.hostname or "127.0.0.1",
        "TINY_SHOP_PG_PORT": str(url.port or 5432),
        "TINY_SHOP_PG_USER": unquote(url.username or "postgres"),
        "TINY_SHOP_PG_PASSWORD": unquote(url.password or ""),
        "TINY_SHOP_PG_DATABASE": unquote(url.path.lstrip("/")) or "postgres",
        "TINY_SHOP_PG_SCHEMA": SCHEMA,
    }


def build_artifacts(workdir: Path, dsn: str, *, fixed: bool) -> tuple[bytes, bytes]:
    """(manifest.json, run_results.json) of one `dbt build` of a fresh copy of the project in `workdir`.

    Failing tests make dbt exit 1, which is expected: the artifacts are read anyway. Anything else that did not
    succeed (a model, the seed, a hook) is a broken setup and raises with dbt's output.
    """
    project = workdir / ("tiny_shop_fixed" if fixed else "tiny_shop")
    shutil.rmtree(project, ignore_errors=True)
    shutil.copytree(PROJECT, project)
    env = os.environ | _connection_env(dsn) | {"DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "NO_COLOR": "1"}
    command = [str(dbt_executable()), "build", "--project-dir", str(project), "--profiles-dir", str(project),
               "--vars", json.dumps({"fixed": fixed})]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_SECONDS)
    target = project / "target"
    try:
        manifest, run_results = (target / "manifest.json").read_bytes(), (target / "run_results.json").read_bytes()
    except FileNotFoundError as missing:
        raise RuntimeError(f"dbt build wrote no artifacts ({missing}):\n{done.stdout}\n{done.stderr}") from None
    broken = [r["unique_id"] for r in json.loads(run_results)["results"]
              if not r["unique_id"].startswith(("test.", "unit_test.")) and r["status"] != "success"]  # fmt: skip
    if broken or done.returncode not in (0, 1):
        raise RuntimeError(f"dbt build failed (exit {done.returncode}, {broken}):\n{done.stdout}\n{done.stderr}")
    return manifest, run_results


@pytest.fixture(scope="session")
async def dbt_database(infrastructure: tuple[str, str]) -> str:
    """A fresh database on the test server that the builds write to."""
    return await recreate_database(infrastructure[0], DATABASE)


@pytest.fixture(scope="session")
def dbt_artifacts(tmp_path_factory: pytest.TempPathFactory, dbt_database: str) -> tuple[bytes, bytes]:
    """(manifest, run_results) of the tiny_shop build with its data problems: tests pass, warn and fail."""
    return build_artifacts(tmp_path_factory.mktemp("dbt"), dbt_database, fixed=False)


@pytest.fixture(scope="session")
def dbt_artifacts_fixed(tmp_path_factory: pytest.TempPathFactory, dbt_database: str) -> tuple[bytes, bytes]:
    """(manifest, run_results) of the tiny_shop build after the data was repaired: every test passes."""
    return build_artifacts(tmp_path_factory.mktemp("dbt"), dbt_database, fixed=True)
