"""What the repository ships works: the example settings, the example community, the payload schema
in docs/ (generated from the code, and agreeing with the parser)."""

from __future__ import annotations

import importlib
import json
import tomllib
from pathlib import Path
from zoneinfo import ZoneInfo

import jsonschema
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from alerts import rules
from alerts.models import Contact, Device, Resident, Worker
from alerts.registry.community import load_community
from config.settings import load_settings
from sensors.formats import native
from sensors.payloads import Reading, native_schema_json
from tests.harness import T0
from tests.helpers import ROOT


def test_the_example_config_loads_and_matches_the_defaults() -> None:
    example = load_settings(ROOT / "config" / "shouwang.example.toml")
    assert example.model_dump() == load_settings().model_dump()


def test_the_example_community_loads_twice_without_duplicating(engine: Engine, limits: rules.Limits) -> None:
    data = tomllib.loads((ROOT / "config" / "community.example.toml").read_text())
    for _ in range(2):
        with Session(engine) as session, session.begin():
            load_community(session, data, T0, limits)
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Resident)) == 2
        assert session.scalar(select(func.count()).select_from(Device)) == 4
        assert session.scalar(select(func.count()).select_from(Contact)) == 3
        assert session.scalar(select(func.count()).select_from(Worker)) == 3
        resident = session.scalars(select(Resident).where(Resident.external_ref == "r001")).one()
        assert resident.due_at == T0 + limits.window  # a home that never reports still falls due


def test_the_published_schema_is_generated_from_the_code() -> None:
    assert (ROOT / "docs" / "native-payload.schema.json").read_text() == native_schema_json()


def test_the_schema_and_the_parser_agree() -> None:
    schema = json.loads(native_schema_json())
    zone = ZoneInfo("Asia/Shanghai")
    good = [{"type": "motion"}, {"type": "door", "state": "open", "ts": "2026-11-23T08:00:00+08:00"},
            {"type": "battery", "battery": 12, "event_id": "x-1"}, {"type": "meter", "value": 1.5, "ts": 1795392900}]
    bad = [{"type": "dance"}, {"type": "motion", "battery": 101}, {"type": "motion", "colour": "red"}, {}]
    for payload in good:
        jsonschema.validate(payload, schema)
        assert isinstance(native.parse("shouwang/v1/events/d", json.dumps(payload).encode(), zone), Reading)
    for payload in bad:
        assert not jsonschema.Draft202012Validator(schema).is_valid(payload)
        assert not isinstance(native.parse("shouwang/v1/events/d", json.dumps(payload).encode(), zone), Reading)


def test_the_readme_test_command_is_what_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = "pip install -e '.[test]' && ruff check . && mypy && lint-imports && python -m pytest"
    assert command in readme and ci.rstrip().endswith(command)


def test_docs_exist_for_what_the_readme_links(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    for line in readme.splitlines():
        if "](docs/" in line:
            target = line.split("](docs/", 1)[1].split(")", 1)[0]
            assert (ROOT / "docs" / target.split("#")[0]).exists(), target


def test_every_benchmark_imports_and_says_how_to_run_it() -> None:
    """The benchmarks are not run by the suite (they take minutes); this keeps them from rotting."""
    for path in sorted((ROOT / "bench").glob("*.py")):
        if path.stem in ("__init__", "common", "live"):
            continue
        module = importlib.import_module(f"bench.{path.stem}")
        assert callable(getattr(module, "main", None)), f"bench/{path.name} has no main()"
        assert f"python -m bench.{path.stem}" in (module.__doc__ or "") + path.read_text(), path.name
