"""Generate each rule's page (sql/rules/<RULE_ID>/README.md) and the index
(docs/rules/README.md) from the rule folders: rule.toml, the header of
rule.sql, the policy's defaults and the fixtures, quoted by name.

    python scripts/rule_pages.py          # write the pages
    python scripts/rule_pages.py --check  # exit 1 when a page is out of date

tests/test_rule_fixtures.py runs the check, so a page cannot drift from its rule.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from audit import policy  # noqa: E402
from audit.engine.catalogue import RULES_DIR  # noqa: E402
from tests.rule_fixtures import load  # noqa: E402

INDEX = ROOT / "docs" / "rules" / "README.md"

INDEX_HEAD = """# The rules (policy 2027.2)

Each rule is one folder under `sql/rules/<RULE_ID>/`: `rule.sql` (the rule),
`rule.toml` (title, severity, guideline, the policy keys it reads, the readings
chosen), `README.md` (its page, generated from the folder by
`scripts/rule_pages.py`) and `tests/` (its fixtures as data, each named for its
outcome and run by `tests/test_rule_fixtures.py`). Shared definitions (fill
days, supply, trials, antidepressant episodes, adequacy, TF courses,
responses, hospice, history start) are the derived models of `sql/derive/`.
The care pathway: [care-pathway.md](care-pathway.md) (its fixtures:
`sql/pathway/tests/`). What changed from 2027.1:
[changes-2027.2.md](changes-2027.2.md); from 2026.1:
[changes-2027.1.md](changes-2027.1.md).

| id | title | severity |
| --- | --- | --- |
"""


def _page(folder: Path, defaults: dict) -> str:
    meta = tomllib.loads((folder / "rule.toml").read_text())
    header = []
    for line in (folder / "rule.sql").read_text().splitlines():
        if not line.startswith("--"):
            break
        header.append(line[2:].strip())
    out = [
        f"# {meta['id']}: {meta['title']}", "",
        f"**Severity:** {meta['severity']}  ", f"**Guideline:** {meta['guideline']}", "",
        "## Definition", "", " ".join(header), "",
        "The shared definitions it relies on are in `rules.md` of policy 2027.2 and in"
        " `sql/derive/`.", "",
        "## Policy settings read", "", "| key | default (2027.2) |", "| --- | --- |",
    ]  # fmt: skip
    for key in meta["parameters"]:
        out.append(f"| `{key}` | `{defaults.get(key)}` |")
    if not meta["parameters"]:
        out.append("| (none directly; see the derived models) | |")
    out += ["", "## When its cases mature", ""]
    key = meta.get("matures_after")
    out.append(
        f"A case can first be raised `{key}` ({defaults.get(key)}) days after its case date:"
        " the overview and the dashboard mark a quarter holding the last that many days"
        " before the data's `as_of` as still maturing (its rate may still rise)."
        if key
        else "A case is raised as soon as its case date is in the data: its quarters"
        " never wait to mature."
    )
    out += ["", "## Readings chosen", ""] + [f"- {r}" for r in meta.get("readings", [])]
    out += [
        "", "## Worked examples (fixtures)", "",
        "Each example below is a fixture in `tests/`, run against PostgreSQL by the test"
        " suite, so this page cannot drift from the code.", "",
    ]  # fmt: skip
    for fx in sorted((folder / "tests").glob("*.yaml")):
        doc = load(fx)
        out.append(f"- `tests/{fx.name}`: {doc.get('description', '')}")
        for e in doc.get("expect") or []:
            out.append(
                f"  - expects {e['rule']} for `{e['patient']}`: {e.get('status', 'open')},"
                f" {e['severity']}, case date {e['case_date']}"
            )
        if not doc.get("expect"):
            out.append("  - expects no case")
    return "\n".join(out) + "\n"


def render() -> dict[Path, str]:
    defaults = policy.load().params()
    pages, index = {}, [INDEX_HEAD.rstrip("\n")]
    for folder in sorted(p for p in RULES_DIR.iterdir() if p.is_dir()):
        meta = tomllib.loads((folder / "rule.toml").read_text())
        pages[folder / "README.md"] = _page(folder, defaults)
        index.append(
            f"| [{meta['id']}](../../sql/rules/{meta['id']}/README.md) | {meta['title']}"
            f" | {meta['severity']} |"
        )
    pages[INDEX] = "\n".join(index) + "\n"
    return pages


def main(argv: list[str]) -> int:
    stale = [p for p, text in render().items() if not p.is_file() or p.read_text() != text]
    if "--check" in argv:
        for p in stale:
            print(f"out of date: {p.relative_to(ROOT)} (run python scripts/rule_pages.py)")
        return 1 if stale else 0
    for p, text in render().items():
        p.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
