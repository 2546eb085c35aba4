"""Sessions for working on localqueue: ``nox -l`` lists them.

``bash scripts/test.sh`` stays the one command that runs everything (CI runs
it); these sessions run one part each in a fresh virtualenv, which is how to
check that a change installs from the project's own files alone:

    nox -s lint            ruff check and ruff format --check
    nox -s typecheck       mypy --strict on the configured files
    nox -s tests           the whole pytest suite (PostgreSQL tests skip without a server)
    nox -s tests-core      the core's tests with only the core installed
    nox -s tests-postgres  the PostgreSQL plugin's tests against a throwaway server
    nox -s docs            mkdocs build --strict

Pass pytest arguments after ``--``: ``nox -s tests -- -k claim -x``.
"""

from __future__ import annotations

import glob
import tempfile

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["lint", "typecheck", "tests", "docs"]


def install_everything(session: nox.Session) -> None:
    """The core with its dev extras, the harness, every plugin and the example store."""
    targets = ["-e", ".[dev]", "-e", "./harness"]
    for dist in sorted(glob.glob("plugins/*/pyproject.toml")):
        targets += ["-e", dist.rsplit("/", 1)[0]]
    targets += ["-e", "./examples/store_plugin"]
    session.install(*targets)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    install_everything(session)
    session.run("mypy")


@nox.session
def tests(session: nox.Session) -> None:
    install_everything(session)
    session.run("pytest", *session.posargs)


@nox.session(name="tests-core")
def tests_core(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("pytest", "tests", *session.posargs)


@nox.session(name="tests-postgres")
def tests_postgres(session: nox.Session) -> None:
    install_everything(session)
    server = tempfile.mkdtemp(prefix="localqueue-pg-")
    url = session.run(
        "bash", "scripts/postgres-server.sh", "start", f"{server}/server",
        external=True, silent=True,
    )  # fmt: skip
    assert isinstance(url, str)
    try:
        session.run(
            "pytest",
            "plugins/postgres",
            *session.posargs,
            env={
                "LOCALQUEUE_TEST_POSTGRES_URL": url.strip().splitlines()[-1],
                "LOCALQUEUE_REQUIRE_POSTGRES": "1",
            },
        )
    finally:
        session.run("bash", "scripts/postgres-server.sh", "stop", f"{server}/server", external=True)


@nox.session
def docs(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    site = tempfile.mkdtemp(prefix="localqueue-site-")
    session.run("mkdocs", "build", "--strict", "--quiet", "--site-dir", site)
