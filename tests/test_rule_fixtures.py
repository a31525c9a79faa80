"""Every fixture of every rule (``sql/rules/*/tests/*.yaml``) against a real
PostgreSQL; and every rule folder complete: its page, its metadata checked
against the policy and its SQL, fixtures on both sides of its thresholds."""

from __future__ import annotations

import re

import pytest

from audit import policy
from audit.engine.catalogue import ENGINE_PARAMETERS, catalogue
from tests.rule_fixtures import all_fixtures, run_fixture

FIXTURES = all_fixtures()


@pytest.mark.db
@pytest.mark.parametrize(
    "path", FIXTURES, ids=[f"{p.parent.parent.name}/{p.stem}" for p in FIXTURES]
)
def test_fixture(path, conn, tmp_path):
    run_fixture(path, conn, tmp_path)


@pytest.mark.unit
@pytest.mark.parametrize("rule", catalogue()[1], ids=lambda r: r.id)
def test_rule_folder_is_complete(rule):
    keys = set(policy.load().params())
    text = rule.path.read_text()
    used = set(re.findall(r"%\((\w+)\)s", text)) - ENGINE_PARAMETERS
    assert set(rule.parameters) == used, "rule.toml parameters must be what rule.sql reads"
    assert used <= keys, f"not policy settings: {used - keys}"
    assert (rule.folder / "README.md").is_file()
    # at least one fixture with a case and one without (both sides)
    assert len(rule.fixtures) >= 2, f"{rule.id} needs fixtures on both sides of its thresholds"
    page = (rule.folder / "README.md").read_text()
    for name in re.findall(r"`tests/([\w.-]+\.yaml)`", page):
        assert (rule.folder / "tests" / name).is_file(), f"the page quotes a missing fixture {name}"


@pytest.mark.unit
def test_rule_pages_are_generated_from_the_folders():
    import runpy

    from audit.db import PROJECT_ROOT

    pages = runpy.run_path(str(PROJECT_ROOT / "scripts" / "rule_pages.py"))["render"]()
    stale = [str(p) for p, text in pages.items() if not p.is_file() or p.read_text() != text]
    assert stale == [], "run python scripts/rule_pages.py"
