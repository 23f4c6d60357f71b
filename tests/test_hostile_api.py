"""A hostile client: schemathesis sends every operation of the app's own OpenAPI document valid and invalid
requests (huge ids, NUL bytes, absurd numbers, wrong types, missing fields), signed in as an admin.
Every answer is below 500 and matches the document. Plus the cases the probe found, one by one."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from pydantic import BaseModel
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance
from sqlalchemy.orm import Session

from alerts.models import HUMAN_OUTCOMES
from api import accounts, admin_schemas
from api import schemas as api_schemas
from tests.harness import T0, Site

ADMIN, PASSWORD = "hostile-admin", "a long enough password"
COMMUNITY: dict[str, Any] = {
    "community": {"name": "夷陵社区"},
    "grids": [{"name": "第一网格", "micro_grids": [{"name": "1号楼"}]}],
    "workers": [{"name": "李娜", "phone": "+8613800000001", "role": "grid_worker", "grid": "第一网格"}],
    "residents": [{"ref": "r1", "name": "王秀英", "address": "1号楼 301", "micro_grid": "第一网格/1号楼",
                   "devices": [{"id": "pir-1", "kind": "motion"}],
                   "contacts": [{"name": "王强", "phone": "+8613900000011"}]}],
}
# the event stream never ends; signing out would end the session the probe uses
SKIPPED = {("GET", "/api/stream"), ("POST", "/api/auth/logout")}
# fields whose name says it all
SELF_EVIDENT = {"id", "name", "phone", "address", "birth_year", "resident_name", "note"}
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "6"))  # per operation and mode; more: FUZZ_EXAMPLES=100


@pytest.fixture
def site(make_site: Callable[..., Site]) -> Site:
    """A Shouwang with the community loaded and ``ADMIN`` signed in through the login form."""
    s = make_site(community=COMMUNITY, api={"secret_key": "k" * 32})
    with Session(s.engine) as session, session.begin():
        accounts.add_user(session, ADMIN, "admin", PASSWORD, T0)
    s.sign_in(ADMIN, PASSWORD)
    return s


def _probe(site: Site, operation: schemathesis.APIOperation, mode: schemathesis.GenerationMode) -> str | None:
    """EXAMPLES requests to one operation; the first failure found (after shrinking), or None."""
    # /healthz answers 503 when the watch is not running (here: no tick): documented, not an error
    checks = [response_schema_conformance, status_code_conformance]
    if operation.path != "/healthz":
        checks.append(not_a_server_error)

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def probe(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=site.headers(ADMIN), checks=checks)

    started = time.monotonic()
    try:
        probe()
    except Unsatisfiable:  # nothing to get wrong (no parameters, or only a free-form body)
        return None
    except (Exception, BaseExceptionGroup) as exc:
        return f"{operation.method.upper()} {operation.path} ({mode.value}): " + "\n".join(str(exc).splitlines()[:14])
    finally:
        TIMES[f"{operation.method.upper()} {operation.path} {mode.value}"] = time.monotonic() - started
    return None


TIMES: dict[str, float] = {}


def test_no_request_gets_a_server_error_and_every_answer_matches_the_openapi_document(site: Site) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", site.runtime.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    probed = [op for op in operations if (op.method.upper(), op.path) not in SKIPPED]
    assert len(probed) > 40
    failures = [failure for op in probed
                for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
                if (failure := _probe(site, op, mode)) is not None]
    print(sorted(TIMES.items(), key=lambda kv: -kv[1])[:8])
    assert not failures, "\n\n".join(failures)


def test_ids_beyond_the_id_columns_range_are_refused_not_a_server_error(site: Site) -> None:
    big = 2**40
    for path in (f"/api/admin/residents/{big}", f"/api/residents/{big}", f"/api/admin/devices?resident_id={big}",
                 f"/api/admin/micro-grids?grid_id={big}", f"/api/audit?before={big}", f"/api/alarms/{big}",
                 f"/api/admin/residents/{2**70}"):
        response = site.client(ADMIN).get(path)
        assert 400 <= response.status_code < 500, (path, response.status_code, response.text)


def test_absurd_windows_nul_bytes_and_missing_places_are_refused(site: Site) -> None:
    post = lambda path, body: site.client(ADMIN).post(path, json=body)  # noqa: E731
    assert post("/api/admin/grids", {"name": "g2", "window_hours": 1e308}).status_code == 422
    assert post("/api/admin/residents", {"name": "x", "window_hours": 9e300}).status_code == 422
    response = post("/api/admin/communities", {"name": "nul\x00name"})
    assert response.status_code in (201, 422), response.text  # SQLite stores it; PostgreSQL cannot
    response = site.client(ADMIN).get("/api/audit", params={"actor": "a\x00b"})
    assert response.status_code in (200, 422), response.text
    for body in ({"name": "w", "phone": "+861380000009", "role": "supervisor", "community_id": 999},
                 {"name": "w", "phone": "+861380000009", "role": "grid_worker", "grid_id": 999},
                 {"name": "w", "phone": "+861380000009", "role": "micro_grid_worker", "micro_grid_id": 999}):
        response = post("/api/admin/workers", body)
        assert response.status_code == 404, response.text


def test_resolve_advertises_only_the_outcomes_a_person_may_choose(site: Site) -> None:
    schema = site.client().get("/openapi.json").json()
    outcome = schema["components"]["schemas"]["ResolveIn"]["properties"]["outcome"]
    assert sorted(outcome["enum"]) == sorted(o.value for o in HUMAN_OUTCOMES)
    response = site.client(ADMIN).post("/api/alarms/1/resolve", json={"outcome": "activity_resumed"})
    assert response.status_code == 422
    # a refusal's `detail` (a message, not a list of fields) matches what the document declares for 422
    declared = schema["components"]["schemas"]["HTTPValidationError"]
    validator = jsonschema.Draft202012Validator({**declared, "components": schema["components"]})
    for body in (response.json(), {"detail": "outcome must be one of ..."}):
        assert not list(validator.iter_errors(body)), body


def test_every_field_of_the_api_says_what_it_means(site: Site) -> None:
    schema = site.client().get("/openapi.json").json()
    ours = {name for module in (api_schemas, admin_schemas) for name, value in vars(module).items()
            if isinstance(value, type) and issubclass(value, BaseModel) and value.__module__ == module.__name__}
    undescribed = [f"{name}.{field}" for name, component in schema["components"]["schemas"].items() if name in ours
                   for field, spec in component.get("properties", {}).items()
                   if "description" not in spec and field not in SELF_EVIDENT]
    assert not undescribed, undescribed
    assert "ref" in schema["components"]["schemas"]["ResidentOut"]["required"]
    [row] = site.client(ADMIN).get("/api/residents").json()
    assert row["ref"] == "r1"
