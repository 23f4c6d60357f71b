"""Sign-in, sessions, SMS links and the phone channels under a hostile client (issue 14, items 4, 6
and 18): real time for sessions, the lock that parallel guesses cannot race, the per-address limit,
bounded argon2, one-alarm links signed at sending, replayed webhooks, the same scope on every channel,
revocation, the pages' headers, ``?token=`` on the stream only, ``SHOUWANG_NEW_PASSWORD``. Real HTTP
servers, SQLite and PostgreSQL, the real ``twilio`` package against tests/fake_twilio.py."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx2 as httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.escalation.links import pin_stamp, sign_link
from alerts.models import Alarm, ApiToken, Attempt, Community, Grid, User, Worker
from api import accounts, auth
from api.auth import LoginError, sign_in
from api.cli import main as cli_main
from config.settings import utcnow
from tests.conftest import T0
from tests.fake_twilio import ACCOUNT_SID, FROM, FakeTwilio
from tests.harness import Site
from tests.test_escalation import GRID, activity, raise_inactivity, served_with_twilio
from tests.test_roles_and_stream import GRID_A, raise_alarms, served_community

H = timedelta(hours=1)
M = timedelta(minutes=1)


@pytest.fixture
def api(make_site: Callable[..., Site]) -> Site:
    return served_community(make_site)


@pytest.fixture
def env(fake: FakeTwilio, make_site: Callable[..., Site]) -> Site:
    return served_with_twilio(make_site, fake)


def worker_login(api: Site, pin: str, **kw: Any) -> httpx.Response:
    return httpx.post(api.url + "/api/auth/worker-login", json={"phone": GRID_A, "pin": pin}, timeout=30, **kw)


def set_pin(api: Site, pin: str = "1357") -> None:
    api.set_pin(GRID_A, pin)


# -- item 4: sessions on real time ---------------------------------------------------------------------
def test_a_session_lives_on_real_time_not_on_the_service_clock(api: Site) -> None:
    set_pin(api)
    token = worker_login(api, "1357").json()["token"]
    api.clock.set(T0 + 13 * H)  # the service's clock runs on (600x in the demo): the session does not end
    me = httpx.get(api.url + "/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.json()["name"] == "甲"
    with Session(api.engine) as session, session.begin():  # a session that ended in real time
        old = auth.issue_token(session, utcnow() - 13 * H, 12 * H, worker_id=session.scalars(
            select(Worker.id).where(Worker.phone == GRID_A)).one())
    assert httpx.get(api.url + "/api/auth/me", headers={"Authorization": f"Bearer {old}"}).status_code == 401


# -- (a) the lockout cannot be raced; per account and address, with back-off; 429 per address ----------
def test_parallel_pin_guesses_are_counted_atomically_and_none_gets_through(api: Site) -> None:
    set_pin(api, "4545")
    guesses = [f"{n:04d}" for n in range(1000, 1039)] + ["4545"]  # the right PIN last of 40 at once

    def guess(pin: str) -> tuple[int, str]:
        response = worker_login(api, pin)
        return response.status_code, response.json().get("detail", "")

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(guess, guesses))
    checked = [a for a in answers if a == (401, "用户名或密码错误")]  # "wrong name or password" in notify.language (zh)
    assert len(checked) <= auth.MAX_FAILURES  # at most five guesses were evaluated
    assert all(status in (401, 429) for status, _ in answers)  # the right PIN did not get through
    assert any(status == 429 for status, _ in answers)  # over 30 a minute from one address


def test_a_strangers_failures_lock_only_their_address_and_locks_grow(engine: Any) -> None:
    now = utcnow()
    with Session(engine) as session, session.begin():
        session.add(User(username="admin", role="admin", password_hash=auth.hash_secret("correct horse"),
                         created_at=now))
    for _ in range(auth.MAX_FAILURES):
        with pytest.raises(LoginError, match="wrong"):
            sign_in(engine, "user", "admin", "guess", "203.0.113.9", now, H)
    with pytest.raises(LoginError, match="try again later"):  # the stranger's address is locked ...
        sign_in(engine, "user", "admin", "correct horse", "203.0.113.9", now, H)
    token, principal = sign_in(engine, "user", "admin", "correct horse", "10.0.0.5", now, H)  # ... not the admin's
    assert token and principal.role == "admin"
    with pytest.raises(LoginError, match="try again later"):  # the lock holds within its minute
        sign_in(engine, "user", "admin", "guess", "203.0.113.9", now + 30 * timedelta(seconds=1), H)
    later = now + auth.LOCKOUT + timedelta(seconds=1)  # the first lock ran out: five more tries, a longer lock
    for _ in range(auth.MAX_FAILURES):
        with pytest.raises(LoginError, match="wrong"):
            sign_in(engine, "user", "admin", "guess", "203.0.113.9", later, H)
    with pytest.raises(LoginError, match="try again later"):
        sign_in(engine, "user", "admin", "guess", "203.0.113.9", later, H)
    with pytest.raises(LoginError, match="try again later"):  # back-off: the second lock is longer
        sign_in(engine, "user", "admin", "correct horse", "203.0.113.9", later + auth.LOCKOUT + timedelta(seconds=1), H)


# -- (b) bounded argon2 -----------------------------------------------------------------------------------
def test_argon2_checks_are_sized_for_the_service_and_bounded_in_number() -> None:
    stored = auth.hash_secret("1357")
    assert "$argon2id$" in stored and "m=19456,t=2,p=1" in stored  # 19 MiB, not the 64 MiB default
    for _ in range(auth.HASH_SLOTS):  # every slot busy: a further check waits for one
        auth._hash_slots.acquire()
    done = threading.Event()
    thread = threading.Thread(target=lambda: (auth.verify_secret(stored, "1357"), done.set()))
    try:
        thread.start()
        assert not done.wait(0.5)
    finally:
        for _ in range(auth.HASH_SLOTS):
            auth._hash_slots.release()
    thread.join(timeout=30)
    assert done.is_set()


# -- (e) a PIN change or deactivation ends sessions --------------------------------------------------------
def test_a_pin_change_or_deactivation_ends_the_workers_sessions(api: Site) -> None:
    set_pin(api)
    token = worker_login(api, "1357").json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(api.url + "/api/auth/me", headers=headers).status_code == 200
    set_pin(api, "2468")
    assert httpx.get(api.url + "/api/auth/me", headers=headers).status_code == 401
    token = worker_login(api, "2468").json()["token"]
    with Session(api.engine) as session:
        worker_id = session.scalars(select(Worker.id).where(Worker.phone == GRID_A)).one()
    assert api.http("admin", "PATCH", f"/api/admin/workers/{worker_id}", json={"active": False}).status_code == 200
    assert api.http("admin", "PATCH", f"/api/admin/workers/{worker_id}", json={"active": True}).status_code == 200
    assert httpx.get(api.url + "/api/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401


# -- (d) the SMS link: one alarm, dies with the alarm and the PIN, never stored -----------------------------
def test_the_sms_link_opens_one_alarm_and_dies_with_its_resolution_and_a_pin_change(api: Site) -> None:
    alarms = raise_alarms(api)
    set_pin(api)
    with Session(api.engine) as session:
        worker = session.scalars(select(Worker).where(Worker.phone == GRID_A)).one()
        stamp, worker_id = pin_stamp(worker.pin_hash), worker.id
    link = sign_link(api.runtime.secret_key, worker_id, alarms["a1"], utcnow() + 20 * H, stamp)
    response = httpx.get(f"{api.url}/m/a/{alarms['a1']}?t={link}", follow_redirects=False)
    assert response.status_code == 303
    cookies = {"sw_session": response.cookies["sw_session"]}
    seen = httpx.get(api.url + "/api/alarms", cookies=cookies).json()
    assert [a["id"] for a in seen] == [alarms["a1"]]  # not the worker's other alarm (a2)
    assert httpx.get(f"{api.url}/api/alarms/{alarms['a2']}", cookies=cookies).status_code == 404
    assert httpx.get(f"{api.url}/api/residents/{api.resident_ids()['a2']}", cookies=cookies).status_code == 404
    assert httpx.get(f"{api.url}/api/residents/{api.resident_ids()['a1']}", cookies=cookies).status_code == 200
    assert httpx.get(api.url + "/api/admin/workers", cookies=cookies).status_code in (401, 403)

    set_pin(api, "2468")  # a PIN change: the link is dead
    assert httpx.get(f"{api.url}/m/a/{alarms['a1']}?t={link}", follow_redirects=False).status_code == 403
    with Session(api.engine) as session:
        stamp = pin_stamp(session.scalars(select(Worker.pin_hash).where(Worker.phone == GRID_A)).one())
    link = sign_link(api.runtime.secret_key, worker_id, alarms["a1"], utcnow() + 20 * H, stamp)
    assert httpx.get(f"{api.url}/m/a/{alarms['a1']}?t={link}", follow_redirects=False).status_code == 303
    assert api.http("operator", "POST", f"/api/alarms/{alarms['a1']}/resolve",
                    json={"outcome": "resident_fine"}).status_code == 200
    assert httpx.get(f"{api.url}/m/a/{alarms['a1']}?t={link}", follow_redirects=False).status_code == 403


def test_the_sms_link_is_signed_at_sending_and_not_stored(env: Site, fake: FakeTwilio) -> None:
    with Session(env.engine) as session, session.begin():
        accounts.set_pin(session, GRID, "1357")
    raise_inactivity(env)
    fake.play()
    env.escalate()  # step 2: the grid worker's SMS, with the link
    sms = next(m for m in fake.messages if m.to == GRID)
    assert "/m/a/" in sms.body and "?t=" in sms.body
    link = sms.body[sms.body.index("http"):].split()[0]
    with Session(env.engine) as session:
        stored = [a.params for a in session.scalars(select(Attempt).where(Attempt.phone == GRID))]
    assert stored and all("t=" not in str(params) for params in stored)  # no credential at rest (export)
    export = env.http("admin", "GET", f"/api/admin/residents/{env.alarm().resident_id}/export").text
    assert "?t=" not in export
    assert httpx.get(link, follow_redirects=False).status_code == 303


# -- (c) a replayed webhook changes nothing ----------------------------------------------------------------
def test_a_replayed_sms_reply_does_not_acknowledge_a_later_alarm(env: Site, fake: FakeTwilio) -> None:
    raise_inactivity(env)
    fake.play()
    env.escalate()
    first = env.alarm()
    captured = {"MessageSid": "SM" + "7" * 32, "From": GRID, "To": FROM, "Body": "1", "AccountSid": ACCOUNT_SID,
                "NumMedia": "0"}
    assert "已确认" in fake.post(f"{env.url}/webhooks/twilio/sms", captured).text
    assert env.alarm().state == "acknowledged"
    resolved = env.http("admin", "POST", f"/api/alarms/{first.id}/resolve", json={"outcome": "resident_fine"})
    assert resolved.status_code == 200
    activity(env, 14 * H + M, device="sos-1")  # a later alarm: the panic button
    env.at(14 * H + 2 * M)
    fake.play()
    replay = fake.post(f"{env.url}/webhooks/twilio/sms", captured)  # the same signed request again
    assert replay.status_code == 200 and "已确认" not in replay.text
    with Session(env.engine) as session:
        assert session.scalars(select(Alarm.state).where(Alarm.kind == "panic")).one() == "open"


def test_a_replayed_keypress_is_handled_once(env: Site) -> None:
    from alerts.escalation.notifiers.base import Keypress
    from api.routes.webhooks import _first_time, receipt_keys

    keys = receipt_keys([Keypress(attempt_id=1, provider_id="CA1", digits="1")])
    assert keys == ["gather:CA1:1"]
    assert _first_time(env.engine, keys, utcnow()) and not _first_time(env.engine, keys, utcnow())


# -- item 6: the same scope on every channel --------------------------------------------------------------
def test_an_sms_acknowledgement_from_a_worker_of_another_grid_is_refused_politely(env: Site, fake: FakeTwilio) -> None:
    other = "+8613800000099"
    with Session(env.engine) as session, session.begin():
        community = session.scalars(select(Community)).one()
        grid = Grid(community_id=community.id, name="第二网格")
        session.add(grid)
        session.flush()
        session.add(Worker(name="外网格", phone=other, role="grid_worker", grid_id=grid.id, active=True))
    alarm = raise_inactivity(env)
    reply = fake.sms_from(env.url, other, f"1 {alarm.code}")
    assert "不在您负责的范围" in reply and alarm.code in reply
    assert env.alarm().state == "open"
    assert "已确认" in fake.sms_from(env.url, GRID, f"1 {alarm.code}")  # the grid's own worker may
    assert env.alarm().state == "acknowledged"


# -- (f) headers, Secure cookie, ?token= on the stream only ---------------------------------------------
def test_pages_send_security_headers_and_the_query_token_works_on_the_stream_only(api: Site) -> None:
    for path in ("/m/", "/screen"):
        headers = httpx.get(api.url + path).headers
        csp = headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
        assert "frame-ancestors 'none'" in csp and headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff" and headers["referrer-policy"] == "no-referrer"
    token = api.token("operator")
    assert httpx.get(f"{api.url}/api/residents?token={token}").status_code == 401
    with httpx.stream("GET", f"{api.url}/api/stream?token={token}", timeout=10) as response:
        assert response.status_code == 200


def test_the_session_cookie_is_secure_behind_https(api: Site) -> None:
    set_pin(api)
    plain = worker_login(api, "1357")
    assert "secure" not in plain.headers["set-cookie"].lower()
    proxied = worker_login(api, "1357", headers={"X-Forwarded-Proto": "https"})  # from a trusted proxy (loopback)
    assert "secure" in proxied.headers["set-cookie"].lower()


# -- (g) SHOUWANG_NEW_PASSWORD --------------------------------------------------------------------------
def test_user_add_takes_its_password_from_shouwang_new_password(db_url: str, monkeypatch: pytest.MonkeyPatch,
                                                                 engine: Any) -> None:
    monkeypatch.setenv("SHOUWANG_DATABASE__URL", db_url)
    monkeypatch.setenv("SHOUWANG_NEW_PASSWORD", "a long secret")
    assert cli_main(["user", "add", "alice", "--role", "operator"]) == 0
    _, principal = sign_in(engine, "user", "alice", "a long secret", "127.0.0.1", utcnow(), H)
    assert principal.role == "operator"
    with Session(engine) as session:
        assert session.scalars(select(ApiToken).where(ApiToken.user_id == principal.id)).first() is not None
