"""Database and API-server fixtures for the provisioning tests.

Not a conftest (tests/conftest.py belongs to the gateway side): test modules
import what they use, e.g. `from tests.conftest_db import db_url  # noqa: F401`.

- `db_url` (module scope, parametrised): a fresh SQLite file, and — when
  reachable — a fresh schema in PostgreSQL at `VOIPLAB_TEST_DB` (default
  postgresql://postgres@127.0.0.1:5432/test), dropped after the module.
  A down PostgreSQL is started with pg_ctlcluster once; if that fails the
  PostgreSQL variants are skipped with a loud reason.
- `ManualClock`: the injected clock, moved by the test.
- `ApiServer`: a real uvicorn server on 127.0.0.1:<free port> in a thread.
- `prov` (module scope, one per backend): the provisioning API served by
  `ApiServer` over `db_url`, with an `Api` helper (authorised and anonymous
  httpx clients, the directory, the clock, every published change).
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy.engine import Engine

from provisioning.api import ProvisioningContext, create_app
from provisioning.db import init_db, make_engine
from provisioning.directory import Directory
from provisioning.events import Change, ChangeBus

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
_pg_state: dict[str, str | None] = {}  # per test session: url → None (ok) or the failure reason


def pg_base_url() -> str:
    return os.environ.get("VOIPLAB_TEST_DB", DEFAULT_PG_URL)


def _pg_error(url: str) -> str | None:
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return None
    except psycopg.Error as exc:
        return str(exc).strip() or type(exc).__name__


def _try_start_local_postgres() -> str:
    versions = sorted(os.path.basename(p) for p in glob.glob("/etc/postgresql/*"))
    if not versions:
        return "no /etc/postgresql cluster to start"
    cmd = ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{' '.join(cmd)}: {exc}"
    return f"{' '.join(cmd)} exited {done.returncode}: {done.stderr.strip()}"


def postgres_available(url: str) -> str | None:
    """None when PostgreSQL at `url` answers (starting a local cluster once if
    needed), else why not."""
    if url in _pg_state:
        return _pg_state[url]
    error = _pg_error(url)
    if error is not None and any(h in url for h in ("@127.0.0.1", "@localhost", "@[::1]")):
        attempt = _try_start_local_postgres()
        for _ in range(30):
            error = _pg_error(url)
            if error is None:
                break
            time.sleep(0.5)
        if error is not None:
            error = f"{error}; start attempt: {attempt}"
    _pg_state[url] = error
    return error


def _with_search_path(url: str, schema: str) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={schema}')}"


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'voiplab.db'}"
        return
    base = pg_base_url()
    error = postgres_available(base)
    if error is not None:
        reason = f"POSTGRESQL NOT REACHABLE at {base} — PostgreSQL variants SKIPPED: {error}"
        warnings.warn(reason, stacklevel=1)
        pytest.skip(reason)
    schema = f"voiplab_t_{secrets.token_hex(4)}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield _with_search_path(base, schema)
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


_template: dict[str, Path] = {}  # per test session: an SQLite file migrated to head once


def _migrated_template(factory: pytest.TempPathFactory) -> Path:
    """Migrating costs ~50 ms per database; copying a migrated file costs ~1 ms."""
    if "path" not in _template:
        path = factory.mktemp("template") / "voiplab.db"
        engine = make_engine(f"sqlite:///{path}")
        init_db(engine)
        engine.dispose()  # checkpoints the WAL into the main file
        _template["path"] = path
    return _template["path"]


@pytest.fixture
def sqlite_url(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh SQLite file already at the newest migration (init_db on it is a no-op)."""
    target = tmp_path / "voiplab.db"
    shutil.copyfile(_migrated_template(tmp_path_factory), target)
    return f"sqlite:///{target}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new, empty database per test (SQLite file or PostgreSQL schema), for migrations."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    base = pg_base_url()
    error = postgres_available(base)
    if error is not None:
        pytest.skip(f"POSTGRESQL NOT REACHABLE at {base}: {error}")
    schema = f"voiplab_m_{secrets.token_hex(4)}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield _with_search_path(base, schema)
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


class ManualClock:
    """The one clock, injected; moves only when the test says so."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now


class ApiServer:
    """uvicorn serving `app` on 127.0.0.1 (free port) in a background thread."""

    def __init__(self, app: FastAPI) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name="test-uvicorn", daemon=True)

    def __enter__(self) -> ApiServer:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("uvicorn thread died during start-up")
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start within 20 s")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=20)
        self._sock.close()


SIP_DOMAIN = "lab.voiplab.test"


class StaticLiveView:
    """Stands in for the gateway's LiveView: whatever the test puts in it."""

    def __init__(self) -> None:
        self.regs: list[dict[str, Any]] = []
        self.active_calls: list[dict[str, Any]] = []

    def registrations(self) -> list[dict[str, Any]]:
        return list(self.regs)

    def calls(self) -> list[dict[str, Any]]:
        return list(self.active_calls)


@dataclass
class Api:
    http: httpx.Client  # authorised
    anon: httpx.Client  # no token
    engine: Engine
    directory: Directory
    clock: ManualClock
    live: StaticLiveView
    changes: list[Change] = field(default_factory=list)

    def post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return self.http.post(f"/api/v1{path}", json=body)

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.http.get(f"/api/v1{path}", params=params)

    # helpers that build fixtures through the API itself
    def account(self, **kw: Any) -> dict[str, Any]:
        body = {"name": f"acme-{secrets.token_hex(3)}", "plan": "connect", "region": "US", **kw}
        r = self.post("/accounts", body)
        assert r.status_code == 201, r.text
        created: dict[str, Any] = r.json()
        return created

    def user(self, account_id: int, extension: str, **kw: Any) -> dict[str, Any]:
        body = {"named_user_id": f"jane.doe.{secrets.token_hex(4)}@example.com",
                "display_name": "Jane Doe", "extension": extension, **kw}
        r = self.post(f"/accounts/{account_id}/users", body)
        assert r.status_code == 201, r.text
        created: dict[str, Any] = r.json()
        return created

    def location(self, account_id: int, **kw: Any) -> dict[str, Any]:
        body = {"country": "US", "a1": "TX", "a3": "Austin", "rd": "Congress", "sts": "Ave",
                "hno": "100", "pc": "78701", "flr": "3", "room": "301",
                "callback_number": "+15125550100", **kw}
        r = self.post(f"/accounts/{account_id}/locations", body)
        assert r.status_code == 201, r.text
        created: dict[str, Any] = r.json()
        return created

    def softphone(self, account_id: int, user_ids: list[int]) -> dict[str, Any]:
        r = self.post(f"/accounts/{account_id}/devices", {
            "hardware_profile": "softphone-desktop", "name": "laptop",
            "lines": [{"user_id": u} for u in user_ids]})
        assert r.status_code == 201, r.text
        created: dict[str, Any] = r.json()
        return created


def random_mac() -> str:
    return "00:15:65:" + ":".join(f"{b:02X}" for b in secrets.token_bytes(3))


@pytest.fixture(scope="module")
def prov(db_url: str) -> Iterator[Api]:
    engine = make_engine(db_url)
    init_db(engine)
    bus = ChangeBus()
    directory = Directory(engine)
    directory.load_all()
    bus.subscribe_many(directory.apply_many)
    clock = ManualClock()
    live = StaticLiveView()
    token = secrets.token_urlsafe(16)
    ctx = ProvisioningContext(engine=engine, api_token=token, sip_domain=SIP_DOMAIN, now=clock,
                              bus=bus, live=live)
    with ApiServer(create_app(ctx)) as server, \
            httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {token}"},
                         timeout=30) as http, \
            httpx.Client(base_url=server.base_url, timeout=30) as anon:
        a = Api(http=http, anon=anon, engine=engine, directory=directory, clock=clock, live=live)
        bus.subscribe(a.changes.append)
        yield a
    engine.dispose()


def loc(resp: httpx.Response) -> list[list[Any]]:
    """The `loc` of every error in a 422 body."""
    assert resp.status_code == 422, resp.text
    return [d["loc"] for d in resp.json()["detail"]]
