"""The docs are part of the product: every command is in the README, every key in the example."""

from __future__ import annotations

import re
from pathlib import Path

import typer.main

from tradepipe.cli import app

ROOT = Path(__file__).resolve().parent.parent


def command_paths(group, prefix=()) -> list[tuple[str, ...]]:
    paths = []
    for name, command in group.commands.items():
        path = (*prefix, name)
        if hasattr(command, "commands") and command.commands:
            paths.extend(command_paths(command, path))
        if not getattr(command, "commands", None) or getattr(
            command, "invoke_without_command", False
        ):
            paths.append(path)
    return paths


def test_every_cli_command_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    missing = [
        " ".join(p)
        for p in command_paths(typer.main.get_command(app))
        if f"tradepipe {' '.join(p)}" not in readme
    ]
    assert missing == []


def test_every_command_has_help_text():
    group = typer.main.get_command(app)

    def walk(command, name):
        assert command.help, f"{name} has no help text"
        for child_name, child in getattr(command, "commands", {}).items():
            walk(child, f"{name} {child_name}")

    walk(group, "tradepipe")


def test_readme_setup_commands_match_ci():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    test_command = re.search(
        r"pip install -e '\.\[test\]' && (\.venv/bin/python -m pytest[^\n`]*)", readme
    )
    assert test_command, "the README's test command changed: keep .ci/run in step"
    assert ".venv/bin/pip install --quiet -e '.[test]'" in ci
    # The very command the README gives, workers included, is the last line CI runs.
    assert ci.rstrip().splitlines()[-1] == test_command.group(1).strip()


# ---- the docs' own references resolve inside the repository

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]+)\)")


def heading_anchors(path: Path) -> set[str]:
    """GitHub's anchors for a Markdown file's headings."""
    anchors = set()
    for line in path.read_text().splitlines():
        if match := re.match(r"#+ (.+)", line):
            anchors.add(re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-"))
    return anchors


def spec_sections() -> dict[str, str]:
    """docs/spec.md's sections by number, and the anchor of each."""
    sections = {}
    for line in (ROOT / "docs" / "spec.md").read_text().splitlines():
        if match := re.match(r"## (\d+)\. ", line):
            anchor = re.sub(r"[^\w\- ]", "", line[3:].strip().lower()).replace(" ", "-")
            sections[match.group(1)] = anchor
    return sections


def test_every_relative_link_in_the_docs_resolves_to_a_file_and_heading():
    broken = []
    for doc in DOCS:
        for _, target in LINK.findall(doc.read_text()):
            if re.match(r"[a-z]+:", target):  # https:, mailto:
                continue
            file, _, anchor = target.partition("#")
            path = (doc.parent / file).resolve() if file else doc
            if not path.is_file() or not path.is_relative_to(ROOT):
                broken.append(f"{doc.name}: {target} (no such file in the repository)")
            elif anchor and path.suffix == ".md" and anchor not in heading_anchors(path):
                broken.append(f"{doc.name}: {target} (no such heading)")
    assert broken == []


def test_every_spec_citation_links_to_that_section_of_docs_spec():
    sections = spec_sections()
    assert len(sections) >= 10
    wrong = []
    for doc in DOCS:
        if doc.name == "spec.md":
            continue
        text = doc.read_text()
        spec = (ROOT / "docs" / "spec.md").resolve()
        for label, target in LINK.findall(text):
            if match := re.fullmatch(r"SPEC §(\d+)", label):
                file, _, anchor = target.partition("#")
                if (doc.parent / file).resolve() != spec or anchor != sections.get(match[1]):
                    wrong.append(f"{doc.name}: [{label}]({target})")
        # Outside links, a citation is only allowed as the README's note on how it cites.
        bare = LINK.sub("", text).replace('("SPEC §10")', "")
        wrong += [f"{doc.name}: unlinked {m}" for m in re.findall(r"SPEC(?: §\d+|\.md)?", bare)]
    assert wrong == []


def test_every_spec_section_the_code_cites_exists():
    sections = spec_sections()
    cited = {
        (path.name, number)
        for path in (ROOT / "src").rglob("*.py")
        for number in re.findall(r"SPEC §(\d+)", path.read_text())
    }
    assert cited and [c for c in cited if c[1] not in sections] == []


def capabilities_table() -> str:
    """The README's capabilities table, built from what each adapter declares."""
    from tradepipe.brokers.alpaca import broker as alpaca
    from tradepipe.brokers.ccxt.broker import CcxtBroker
    from tradepipe.brokers.ibkr import broker as ibkr
    from tradepipe.brokers.paper import broker as paper
    from tradepipe.config import CcxtAccount
    from tradepipe.config.credentials import Credentials

    spot = CcxtBroker.from_config(
        "binance",
        CcxtAccount(exchange="binance", sandbox=False),
        Credentials("k", "s", source="test"),
        lambda: None,
    )
    rows = [
        ("paper", paper.CAPABILITIES),
        ("alpaca", alpaca.CAPABILITIES),
        ("ibkr", ibkr.CAPABILITIES),
        ("ccxt (binance spot)", spot.capabilities),
    ]

    def listed(values) -> str:
        return ", ".join(sorted(str(v) for v in values))

    def yes(flag: bool) -> str:
        return "yes" if flag else "no"

    lines = [
        "| broker | order types | time in force | native brackets | both exits rest"
        " | fractional | short selling | quotes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, c in rows:
        lines.append(
            f"| {name} | {listed(c.order_types)} | {listed(c.time_in_force)} |"
            f" {yes(c.brackets)} | {yes(c.concurrent_exits)} | {yes(c.fractional)} |"
            f" {yes(c.short_selling)} | {yes(c.quotes)} |"
        )
    return "\n".join(lines)


def test_the_readme_capabilities_table_is_what_the_adapters_declare():
    table = capabilities_table()
    assert table in (ROOT / "README.md").read_text(), f"README should hold:\n{table}"
