"""The API's refusals follow ``notify.language`` (Chinese by default), over real HTTP on SQLite and PostgreSQL:
a 401, 403, 404, 409 and 422 (a bad room, a bad policy, a request that does not match the schemas, a CSV
line) are worded in Chinese, and in English with ``notify.language = "en"``; the status codes are the
same, the body is still ``{"detail": ...}``, the code of the refusal is in ``X-Error-Code``. Every code of
the wording table has both languages with the same fields."""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx2 as httpx
import pytest

from alerts.escalation.policy import PolicyError, policy_from_dict
from alerts.refusals import REFUSALS, Refusal, worded
from tests.harness import Site
from tests.helpers import ROOT

H = timedelta(hours=1)
COMMUNITY: dict[str, Any] = {
    "community": {"name": "社区"},
    "grids": [{"name": "A", "micro_grids": [{"name": "A1"}]}],
    "workers": [{"name": "甲", "phone": "+8613800000001", "role": "grid_worker", "grid": "A"}],
    "residents": [{"ref": "a1", "name": "住A1", "micro_grid": "A/A1", "devices": [{"id": "d-a1", "kind": "motion"}]}],
}

# what each case answers, in each language
WORDS: dict[str, dict[str, str]] = {
    "sign_in_first": {"zh": "请先登录", "en": "sign in first"},
    "no_resident": {"zh": "没有编号为99999的老人", "en": "no resident 99999"},
    "screen": {"zh": "大屏只能查看，不能操作", "en": "screen is read-only"},
    "resolved": {"zh": "告警{code}已处理完毕", "en": "alarm {code} is already resolved"},
    "room": {"zh": "房间只能是卫生间（bathroom）", "en": "a room is one of bathroom"},
    "policy": {"zh": "升级策略'resident'没有步骤", "en": "policy 'resident' has no steps"},
    "missing": {"zh": "缺少此字段", "en": "Field required"},
    "int_parsing": {"zh": "应为整数", "en": "Input should be a valid integer"},
    "outcome": {"zh": "处理结果只能是：", "en": "outcome must be one of "},
    "grid_exists": {"zh": "名为'A'的网格已存在", "en": "a grid named 'A' exists already"},
    "no_route": {"zh": "没有这个地址", "en": "Not Found"},
    "csv": {"zh": "未导入任何数据", "en": "nothing imported"},
    "csv_name": {"zh": "name（姓名）为空", "en": "name is empty"},
}


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_every_refusal_has_both_languages_with_the_same_fields() -> None:
    for code, texts in REFUSALS.items():
        assert set(texts) == {"zh", "en"} and all(t.strip() for t in texts.values()), code
        assert _fields(texts["zh"]) == _fields(texts["en"]), code


def test_every_code_raised_in_the_source_is_in_the_table() -> None:
    """A code missing from the table would be shown as it is (``hours_positiv``): each one raised is there."""
    raised = re.compile(r"(?:Refusal|Error|Conflict|NotFound|InvalidValue)\(\s*(?:\d+,\s*)?\"([a-z_]+)\"(?!\s*\+)")
    found = {(path.name, code) for folder in ("alerts", "api") for path in (ROOT / folder).rglob("*.py")
             for code in raised.findall(path.read_text(encoding="utf-8"))}
    assert len(found) > 60
    assert [(name, code) for name, code in sorted(found) if code not in REFUSALS] == []


def test_a_domain_error_is_english_in_logs_and_worded_for_the_reader() -> None:
    with pytest.raises(PolicyError) as refused:
        policy_from_dict({"name": "p", "steps": [{"contacts": [{"target": "mayor"}]}]})
    assert str(refused.value).startswith("step 1: target must be one of") and "'mayor'" in str(refused.value)
    assert worded(refused.value, "zh").startswith("第1步：联系对象只能是") and refused.value.code == "step_target"
    assert worded(ValueError("as it is"), "zh") == "as it is" and Refusal("a sentence").worded("zh") == "a sentence"


@pytest.mark.parametrize("language", ["zh", "en"])
def test_api_errors_follow_notify_language(make_site: Callable[..., Site], language: str) -> None:
    api = make_site(community=COMMUNITY, **({} if language == "zh" else {"notify": {"language": "en"}})).serve()
    words = {key: texts[language] for key, texts in WORDS.items()}

    def refused(response: httpx.Response, status: int, code: str) -> Any:
        assert response.status_code == status, response.text
        assert response.headers.get("X-Error-Code") == code, response.headers
        return response.json()["detail"]

    # 401: not signed in
    assert refused(httpx.get(api.url + "/api/residents"), 401, "sign_in_first") == words["sign_in_first"]
    # 404: no such resident; no such page
    assert refused(api.http("admin", "GET", "/api/residents/99999"), 404, "no_resident") == words["no_resident"]
    assert refused(api.http("admin", "GET", "/api/nowhere"), 404, "not_found") == words["no_route"]
    # 403: the screen is read-only
    resident = api.resident_ids()["a1"]
    assert refused(api.http("screen", "POST", f"/api/residents/{resident}/activity", json={"source": "worker_visit"}),
                   403, "read_only") == words["screen"]
    # 409: a transition the alarm's state refuses
    api.activity(timedelta(0), "d-a1")
    api.rules_at(14 * H)
    alarm = api.alarms(resident="a1")[0].id
    done = api.http("operator", "POST", f"/api/alarms/{alarm}/resolve", json={"outcome": "resident_fine"})
    assert done.status_code == 200, done.text
    assert refused(api.http("screen", "POST", f"/api/alarms/{alarm}/acknowledge"), 403, "read_only") \
        == words["screen"]
    assert refused(api.http("operator", "POST", f"/api/alarms/{alarm}/acknowledge"), 409, "alarm_resolved") \
        == words["resolved"].format(code=done.json()["code"])
    # 409 from the admin API: a unique name taken
    assert refused(api.http("admin", "POST", "/api/admin/grids", json={"name": "A"}), 409, "exists") \
        == words["grid_exists"]
    # 422: a bad room, a bad policy
    room = refused(api.http("admin", "POST", "/api/admin/devices", json={"external_id": "d-x", "room": "garage"}),
                   422, "room")
    assert room.startswith(words["room"]) and "garage" in room
    assert refused(api.http("admin", "PUT", "/api/policies/resident", json={"definition": {"steps": []}}),
                   422, "policy_no_steps") == words["policy"]
    # 422: requests that do not match the schemas keep FastAPI's list (loc, type), the msg worded
    missing = refused(api.http("admin", "POST", "/api/admin/grids", json={}), 422, "invalid_request")
    assert [(e["loc"], e["type"]) for e in missing] == [(["body", "name"], "missing")]
    assert missing[0]["msg"] == words["missing"]
    bad_id = refused(api.http("admin", "GET", "/api/residents/abc"), 422, "invalid_request")
    assert [(e["loc"], e["type"]) for e in bad_id] == [(["path", "resident_id"], "int_parsing")]
    assert bad_id[0]["msg"].startswith(words["int_parsing"])  # in English: pydantic's own words
    outcome = refused(api.http("operator", "POST", f"/api/alarms/{alarm}/resolve",
                               json={"outcome": "activity_resumed"}), 422, "invalid_request")
    assert outcome[0]["type"] == "value_error" and words["outcome"] in outcome[0]["msg"]
    assert "resident_fine" in outcome[0]["msg"]
    # 422: the CSV import, line by line
    csv = refused(api.http("admin", "POST", "/api/admin/import/residents", content=b"ref,name\nb1,\n",
                           headers={"content-type": "text/csv"}), 422, "nothing_imported")
    assert csv == {"message": words["csv"], "errors": [{"line": 2, "reason": words["csv_name"]}]}
