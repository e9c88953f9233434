"""A throw-away PostgreSQL server for the shared-storage test: Debian's binaries, a cluster in a temporary folder,
a Unix socket only (no TCP port); skipped where PostgreSQL or its Python driver is not installed."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@pytest.fixture()
def postgres_url():
    pytest.importorskip("psycopg2", reason="PostgreSQL's driver (pip install psycopg2-binary)")
    bindir = _bindir()
    if bindir is None or not (bindir / "pg_ctl").exists():
        pytest.skip("PostgreSQL server binaries not found (apt-get install postgresql)")
    root = os.geteuid() == 0  # the server refuses to run as root: run it as Debian's postgres user
    if root and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser to start PostgreSQL as another user")
    base = Path(tempfile.mkdtemp(prefix="emoframe-pg-", dir="/tmp"))  # outside pytest's 0700 folder
    os.chmod(base, 0o755)
    prefix = ["runuser", "-u", "postgres", "--"] if root else []
    if root:
        import pwd

        user = pwd.getpwnam("postgres")
        os.chown(base, user.pw_uid, user.pw_gid)
    data, sock = base / "data", base

    def run(*cmd: str) -> None:
        proc = subprocess.run([*prefix, *cmd], capture_output=True, text=True)
        if proc.returncode:
            pytest.skip(f"could not start PostgreSQL: {(proc.stderr or proc.stdout).strip()[-300:]}")

    run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
    options = f"-k {sock} -c listen_addresses='' -c fsync=off"
    run(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(base / "log"), "-w", "start")
    try:
        yield f"postgresql+psycopg2://postgres@/postgres?host={sock}"
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(base, ignore_errors=True)
