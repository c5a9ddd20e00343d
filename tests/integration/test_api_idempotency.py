"""Idempotency-Key on POST over HTTP, SQLite and PostgreSQL: a retry gets the
first answer (and creates nothing new), another body under the same key is 409,
concurrent twins create one thing, failures that were not answers are not kept."""

from __future__ import annotations

import secrets
import threading
from typing import Any

import httpx

from tests import conftest_db
from tests.conftest_db import Api

db_url, prov = conftest_db.db_url, conftest_db.prov


def post(prov: Api, path: str, body: dict[str, Any], key: str, **kw: Any) -> httpx.Response:
    return prov.http.post(f"/api/v1{path}", json=body, headers={"Idempotency-Key": key}, **kw)


def test_retry_replays_the_first_answer(prov: Api) -> None:
    key = secrets.token_hex(8)
    body = {"name": f"idem-{key}", "plan": "connect", "region": "US"}
    first = post(prov, "/accounts", body, key)
    assert first.status_code == 201 and "idempotency-replayed" not in first.headers
    again = post(prov, "/accounts", body, key)
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["idempotency-replayed"] == "true"
    names = [a["name"] for a in prov.get("/accounts", limit=1000).json()]
    assert names.count(f"idem-{key}") == 1


def test_the_device_password_is_replayed_not_regenerated(prov: Api) -> None:
    acc = prov.account()["id"]
    user = prov.user(acc, "100")["id"]
    body = {"hardware_profile": "softphone-desktop", "name": "sp", "lines": [{"user_id": user}]}
    key = secrets.token_hex(8)
    first, again = (post(prov, f"/accounts/{acc}/devices", body, key) for _ in range(2))
    assert first.json()["lines"][0]["sip_password"] == again.json()["lines"][0]["sip_password"]
    assert len(prov.get(f"/accounts/{acc}/devices").json()) == 1


def test_same_key_other_body_is_409(prov: Api) -> None:
    key = secrets.token_hex(8)
    assert post(prov, "/accounts", {"name": "a", "plan": "connect", "region": "US"}, key).status_code == 201
    r = post(prov, "/accounts", {"name": "b", "plan": "connect", "region": "US"}, key)
    assert r.status_code == 409 and r.json()["rule"] == "idempotency.key_reused"
    r = post(prov, "/accounts/1/deposit", {"name": "a", "plan": "connect", "region": "US"}, key)
    assert r.status_code == 409  # another path is another request too


def test_validation_errors_are_kept_but_401_is_not(prov: Api) -> None:
    key = secrets.token_hex(8)
    bad = {"name": "x", "plan": "platinum", "region": "US"}
    assert post(prov, "/accounts", bad, key).status_code == 422
    assert post(prov, "/accounts", bad, key).headers["idempotency-replayed"] == "true"
    key2 = secrets.token_hex(8)
    good = {"name": "after-401", "plan": "connect", "region": "US"}
    r = prov.anon.post("/api/v1/accounts", json=good, headers={"Idempotency-Key": key2})
    assert r.status_code == 401
    r = post(prov, "/accounts", good, key2)
    assert r.status_code == 201 and "idempotency-replayed" not in r.headers


def test_concurrent_twins_create_one_account(prov: Api) -> None:
    key = secrets.token_hex(8)
    body = {"name": f"twin-{key}", "plan": "connect", "region": "US"}
    results: list[int] = []
    lock = threading.Lock()

    def go() -> None:
        r = post(prov, "/accounts", body, key)
        with lock:
            results.append(r.status_code)

    threads = [threading.Thread(target=go) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(201) >= 1 and set(results) <= {201, 409}
    names = [a["name"] for a in prov.get("/accounts", limit=1000).json()]
    assert names.count(f"twin-{key}") == 1


def test_bad_keys_and_other_methods(prov: Api) -> None:
    assert post(prov, "/accounts", {"name": "x", "plan": "connect", "region": "US"}, "k" * 256).status_code == 400
    r = prov.http.get("/api/v1/plans", headers={"Idempotency-Key": "ignored-on-get"})
    assert r.status_code == 200
