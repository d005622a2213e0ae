"""The documentation stays true to the code: the configuration reference is what the config models generate
and every key has a description; ARCHITECTURE.md's stage table is the code's; the README stays a short page
for users; no commit hashes, issue numbers or dead relative links in the README and docs/."""

import importlib.util
import re
import sys
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
README_LIMIT = 15_000

# 7-40 hex digits with at least one digit and one letter, standing alone: a commit hash, not a number or a
# word.
COMMIT = re.compile(r"\b(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b")
ISSUE = re.compile(r"\bissues? #?\d+", re.IGNORECASE)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


@cache
def _reference_script():
    spec = importlib.util.spec_from_file_location(
        "config_reference", ROOT / "scripts" / "config_reference.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def test_the_configuration_page_is_what_the_config_models_generate():
    script = _reference_script()
    written = (ROOT / "docs" / "configuration.md").read_text()
    assert written == script.render(), (
        "docs/configuration.md is out of date: run `python scripts/config_reference.py` (or `make docs`)"
    )


def test_every_config_key_has_a_description():
    missing = _reference_script().undocumented()
    assert missing == [], f"config keys without a description (add description= to the field): {missing}"


def test_the_reference_lists_nested_sections_with_their_own_defaults():
    keys = {k.key: k for k in _reference_script().run_keys()}
    assert keys["critic.vllm.max_model_len"].default == 8192  # the critic's, not VLLMConfig's 4096
    assert keys["rollout.vllm.max_model_len"].default == 4096
    assert keys["eval.sampling.temperature"].default == 0.7
    assert keys["rollout.engine"].default == "auto"


def test_the_readme_is_at_most_15000_bytes():
    size = len((ROOT / "README.md").read_bytes())
    assert size <= README_LIMIT, (
        f"README.md is {size} bytes; move reference material to docs/ (limit {README_LIMIT})"
    )


def test_the_hash_and_issue_patterns_flag_hashes_and_issues_only():
    assert COMMIT.findall("on a fresh clone of 06d3002, then 8c26667 and c4feecf") == [
        "06d3002",
        "8c26667",
        "c4feecf",
    ]
    ordinary = (
        "2026-11-29, 1e-4, 0.0231, 10800 generations, deadbeef, facade, 5e-06, 1234567, sha256, pg_trgm"
    )
    assert COMMIT.findall(ordinary) == []
    assert ISSUE.findall("(issue 21, parts 3 and 7), issue #12") == ["issue 21", "issue #12"]
    assert ISSUE.findall("the multi-GPU issue, issues with pip") == []


def test_the_readme_and_docs_name_no_commit_hashes_or_issue_numbers():
    found = [
        f"{page.relative_to(ROOT)}:{number}: {match}"
        for page in PAGES
        for number, line in enumerate(page.read_text().splitlines(), 1)
        for match in COMMIT.findall(line) + ISSUE.findall(line)
    ]
    assert found == [], "history belongs in CHANGELOG.md, without hashes or issue numbers"


def test_every_relative_link_in_the_readme_and_docs_points_to_a_file():
    dead = []
    for page in [*PAGES, ROOT / "ARCHITECTURE.md", ROOT / "CHANGELOG.md"]:
        for target in LINK.findall(page.read_text()):
            if target.startswith(("http://", "https://", "mailto:", "#")):
                continue
            path = target.split("#", 1)[0]
            if not (page.parent / path).exists():
                dead.append(f"{page.relative_to(ROOT)}: {target}")
    assert dead == []


def _stage_row(stage) -> str:
    """The row ARCHITECTURE.md shows for `stage`, written from its record in the stage table."""

    def where(output):
        path = output.path.format(round="round_NNNN", checkpoint="<checkpoint>")
        return f"`{path}/`" if output.schema is None else f"`{path}`"

    cells = (
        stage.name,
        ", ".join(where(o) for o in stage.outputs.values()),
        ", ".join(stage.reads),
        ", ".join(stage.inputs),
        ", ".join(stage.params),
        f"`{stage.switch}` set" if stage.switch else "always",
    )
    return "| " + " | ".join(cells) + " |"


def test_the_architecture_page_shows_the_stage_table_as_the_code_declares_it():
    from sdfb import stages

    text = (ROOT / "ARCHITECTURE.md").read_text()
    table = text[text.index("| stage | outputs") :].split("\n\n")[0].splitlines()[2:]
    assert table == [_stage_row(s) for s in stages.TABLE], (
        "ARCHITECTURE.md's stage table differs from sdfb/stages.py's TABLE: update the page"
    )
