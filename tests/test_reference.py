"""The reference under docs/ against the code it describes.

Each check reads a table of docs/reference/*.md and compares it, both ways, with what the
code serves: the functions (name, kind, args) with the catalogue a freshly opened engine
serves, and each function's "who" by calling it, in an organization with a record of every
kind, as the callers that column admits and refuses; the error codes with domain/errors.py;
the `turnstile` subcommands and their flags (and plain defaults) with the argparse parser of
tools/cli.py, whose help must cite the reference; the limits with the constants they name.
It also checks that the reference's links resolve and that nothing in the repository cites
the contract documents a clone does not hold.

Tables are read simply: a row is a line starting with `|`, its cells split on `|` outside
backticks; the key of a row is the backticked text of its first cell.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import re
import subprocess
from pathlib import Path
from typing import Any

import attrs
import trio.testing

import domain.errors
from domain.errors import ERROR_CODES, TurnstileError
from domain.identity import ANONYMOUS, CAPABILITIES, Identity
from engine import EngineConfig, open_engine
from engine.codec import camel
from engine.testing import open_harness
from tools.cli import _parser

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
REFERENCE = DOCS / "reference"
FUNCTION_NAME = re.compile(r"^`([A-Za-z_][\w.]*:[A-Za-z_]\w*)`$")
BACKTICKED = re.compile(r"`([^`]*)`")


def cells(line: str) -> list[str]:
    """The cells of one table row, split on `|` outside backticks."""
    out, cell, quoted = [], "", False
    for char in line.strip().strip("|"):
        if char == "`":
            quoted = not quoted
        if char == "|" and not quoted:
            out.append(cell.strip())
            cell = ""
        else:
            cell += char
    out.append(cell.strip())
    return out


def sections(path: Path) -> dict[str, list[str]]:
    """The lines of `path` under each `## ` heading ("" for those before the first)."""
    found: dict[str, list[str]] = {"": []}
    current = ""
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            current = line[3:].strip()
            found[current] = []
        else:
            found[current].append(line)
    return found


def rows(lines: list[str]) -> list[list[str]]:
    """The body rows of the tables in `lines` (no header, no separator)."""
    table: list[list[str]] = []
    previous_was_row = False
    for line in lines:
        if not line.startswith("|"):
            previous_was_row = False
            continue
        row = cells(line)
        if set("".join(row)) <= set("-: "):
            continue  # the separator
        if previous_was_row:
            table.append(row)
        previous_was_row = True  # the first row of a table is its header
    return table


def key(cell: str) -> str | None:
    match = re.fullmatch(r"`([^`]+)`", cell)
    return match.group(1) if match else None


# -- functions -----------------------------------------------------------------------------


def documented_functions() -> dict[str, tuple[str, str, str]]:
    """name -> (kind, args cell, who cell) of every row of docs/reference/functions.md."""
    found: dict[str, tuple[str, str, str]] = {}
    for row in rows((REFERENCE / "functions.md").read_text().splitlines()):
        match = FUNCTION_NAME.match(row[0])
        if match is None:
            continue
        name = match.group(1)
        assert name not in found, f"{name} is listed twice in docs/reference/functions.md"
        assert len(row) == 6, f"{name}: the row needs 6 cells, has {len(row)}"
        found[name] = (row[1], row[2], row[4])
    return found


def documented_args(cell: str) -> dict[str, bool]:
    """The first backticked `{a, b?}` of an args cell: field -> optional."""
    match = re.search(r"`\{([^`]*)\}`", cell)
    assert match is not None, f"no `{{...}}` args object in {cell!r}"
    fields: dict[str, bool] = {}
    for part in filter(None, (p.strip() for p in match.group(1).split(","))):
        fields[part.rstrip("?")] = part.endswith("?")
    return fields


def served_args(args_type: type) -> dict[str, bool]:
    return {
        camel(field.name): field.default is not attrs.NOTHING for field in attrs.fields(args_type)
    }


async def test_the_function_table_lists_exactly_the_served_functions_with_kind_and_args(
    tmp_path: Path,
) -> None:
    async with open_engine(tmp_path, config=EngineConfig(run_jobs=False)) as engine:
        registry = engine.registry
    served = {name: ("mutation", spec.args_type) for name, spec in registry.mutations.items()}
    served |= {name: ("query", spec.args_type) for name, spec in registry.queries.items()}
    documented = documented_functions()
    assert sorted(set(served) - set(documented)) == [], "served but missing from the reference"
    assert sorted(set(documented) - set(served)) == [], "in the reference but not served"
    for name, (kind, args_type) in served.items():
        doc_kind, args_cell, _ = documented[name]
        assert doc_kind == kind, f"{name} is a {kind}, the reference says {doc_kind}"
        assert documented_args(args_cell) == served_args(args_type), (
            f"{name}: args in the reference differ from {args_type.__name__}"
        )


def test_the_function_table_names_only_known_capabilities() -> None:
    for name, (_, _, who) in documented_functions().items():
        for named in BACKTICKED.findall(who):
            assert named in CAPABILITIES, f"{name}: {named!r} is not a capability"


class _Ids:
    """A probe's `Pick` (lab.chaos.probes) answering with one organization's and one buyer's
    real ids."""

    def __init__(self, ids: dict[str, str]) -> None:
        self.ids = ids
        self.texts = 0

    def __call__(self, kind: str) -> str:
        return self.ids[kind]

    def text(self) -> str:
        self.texts += 1
        return f"ref{self.texts}"

    def choice(self, options: tuple[str, ...]) -> str:
        return options[0]


def _refusal(error: TurnstileError | None) -> tuple[str, Any] | None:
    """(code, capability) of a refusal of the caller's rights; None for anything else."""
    if error is None or error.code not in ("Forbidden", "Unauthenticated"):
        return None
    return error.code, error.data().get("capability")


async def test_each_function_refuses_exactly_the_callers_its_who_column_names(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    """In one organization with a record of every kind: a capability row is refused with
    `Forbidden` naming that capability to a member holding every other one, and not refused
    to a member holding only it; "the user" is not refused to the user and refused to another
    member without capabilities; "admin" is refused to a member holding `*`; "anyone" is not
    refused to an anonymous caller; "any signed-in caller" is refused to an anonymous caller
    only. Queries run first, then mutations (which change the
    records: only refusals of rights are judged, not what the call did)."""
    from lab.chaos.probes import PROBES
    from lab.chaos.world import build_world

    documented = documented_functions()
    async with open_harness(tmp_path / "data") as turnstile:
        engine = turnstile.engine
        org = (await build_world(engine, 1)).orgs[0]
        buyer = org.buyers[0]
        ids = {
            "org": org.org_id,
            "event": org.event_id,
            "location": org.location_id,
            "service": org.service_id,
            "customer": org.customer_id,
            "membership": org.membership_id,
            "order": org.order_id,
            "ticket": org.ticket_id,
            "user": buyer.user_id,
            "waitingList": buyer.waiting_list_id,
            "paymentIntent": buyer.payment_intent_id,
        }

        def member(*caps: str, subject: str = "ref-member") -> Identity:
            return Identity(subject=subject, org_id=org.org_id, caps=frozenset(caps))

        async def refusal(name: str, identity: Identity) -> tuple[str, Any] | None:
            args = PROBES[name].build(_Ids(ids))
            try:
                if name in engine.registry.mutations:
                    await engine.mutation(name, args, identity)
                else:
                    await engine.query(name, args, identity)
            except TurnstileError as error:
                return _refusal(error)
            return None

        ordered = sorted(documented, key=lambda name: documented[name][0] == "mutation")
        for name in ordered:
            who = documented[name][2]
            caps = BACKTICKED.findall(who)
            if who.startswith("anyone"):
                assert await refusal(name, ANONYMOUS) is None, name
            elif who.startswith("admin"):
                assert await refusal(name, member("*")) == ("Forbidden", None), name
            elif who.startswith("any signed-in caller"):
                assert await refusal(name, ANONYMOUS) == ("Unauthenticated", None), name
                assert await refusal(name, member()) is None, name
            elif who.startswith("the user"):
                assert await refusal(name, Identity(subject=buyer.user_id)) is None, name
                assert await refusal(name, member()) == ("Forbidden", None), name
                for cap in caps:  # "the user, or `cap`"
                    assert await refusal(name, member(cap)) is None, f"{name} as {cap}"
            else:
                assert len(caps) == 1, f"{name}: who is {who!r}"
                others = sorted(CAPABILITIES - {caps[0], "*"})
                assert await refusal(name, member(*others)) == ("Forbidden", caps[0]), name
                assert await refusal(name, member(caps[0])) is None, name


def test_the_capability_table_lists_exactly_the_capabilities() -> None:
    table = rows(sections(REFERENCE / "identity.md")["Capabilities"])
    assert {key(row[0]) for row in table} == CAPABILITIES


# -- errors --------------------------------------------------------------------------------


def test_the_error_table_lists_exactly_the_error_codes() -> None:
    codes = set(ERROR_CODES) | {
        cls.code
        for cls in vars(domain.errors).values()
        if isinstance(cls, type) and issubclass(cls, TurnstileError)
    }
    table = rows(sections(REFERENCE / "errors.md")["Codes"])
    documented = [key(row[0]) for row in table]
    assert len(documented) == len(set(documented))
    assert set(documented) == codes


# -- the command line ----------------------------------------------------------------------


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("the turnstile parser has no subcommands")


def arguments(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Each flag (its long form) or positional (its metavar) -> its action, help left out."""
    found: dict[str, argparse.Action] = {}
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if action.option_strings:
            name = max(action.option_strings, key=len)
        else:
            name = str(action.metavar or action.dest.upper())
        found[name] = action
    return found


def test_the_command_line_section_lists_exactly_the_subcommands_and_their_flags() -> None:
    page = sections(REFERENCE / "cli.md")
    commands = subcommands(_parser())
    overview = {key(row[0]) for row in rows(page[""])}
    assert overview == set(commands)
    for name, parser in commands.items():
        heading = f"`turnstile {name}`"
        assert heading in page, f"docs/reference/cli.md has no section {heading}"
        table = {key(row[0]): row for row in rows(page[heading])}
        actual = arguments(parser)
        assert set(table) == set(actual), f"turnstile {name}: flags differ from the reference"
        for flag, row in table.items():
            assert flag is not None
            default = key(row[1])
            given = actual[flag].default
            if default is None or default.startswith("$") or given is None:
                continue
            if isinstance(given, Path):
                assert Path(default) == given, f"turnstile {name} {flag}: default {given}"
            else:
                assert default == str(given), f"turnstile {name} {flag}: default {given!r}"


def test_turnstile_help_and_every_subcommand_help_cite_the_reference() -> None:
    parser = _parser()
    assert "docs/reference.md" in parser.format_help()
    for name, sub in subcommands(parser).items():
        assert "docs/reference/cli.md" in sub.format_help(), f"turnstile {name} --help"


# -- limits --------------------------------------------------------------------------------


def resolve(dotted: str) -> Any:
    """The value a dotted path names: a module attribute, an attribute chain below it, or
    the default of an attrs class's field."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            value: Any = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        try:
            for part in parts[split:]:
                if isinstance(value, type) and attrs.has(value):
                    value = getattr(attrs.fields(value), part).default
                else:
                    value = getattr(value, part)
        except AttributeError:
            raise AssertionError(f"{dotted} is not in the code (moved or renamed?)") from None
        return value
    raise AssertionError(f"{dotted} names no module")


def limit_rows() -> list[tuple[str, Any]]:
    found = []
    for row in rows((REFERENCE / "limits.md").read_text().splitlines()):
        where = key(row[2])
        if where is None:
            continue
        found.append((where, ast.literal_eval(BACKTICKED.findall(row[1])[0])))
    return found


def test_every_limit_is_the_value_of_the_constant_it_names() -> None:
    found = limit_rows()
    assert len(found) > 20
    for where, value in found:
        actual = resolve(where)
        assert actual == value and type(actual) is type(value), (
            f"docs/reference/limits.md says {where} = {value!r}; the code holds {actual!r}"
        )


def test_every_server_limit_is_listed() -> None:
    from engine.server import ServerConfig

    listed = {where for where, _ in limit_rows()}
    for field in attrs.fields(ServerConfig):
        assert f"engine.server.ServerConfig.{field.name}" in listed, field.name


# -- links and citations -------------------------------------------------------------------


def slug(heading: str) -> str:
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    lines = path.read_text().splitlines()
    return {slug(line.lstrip("#")) for line in lines if line.startswith("#")}


def test_the_reference_links_and_file_names_resolve() -> None:
    pages = [DOCS / "reference.md", *sorted(REFERENCE.glob("*.md"))]
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if "://" in target:
                continue
            file, _, anchor = target.partition("#")
            linked = (page.parent / file).resolve() if file else page
            assert linked.is_file(), f"{page.relative_to(REPO)} links to missing {target}"
            if anchor and linked.suffix == ".md":
                assert anchor in anchors(linked), f"{page.relative_to(REPO)}: no #{anchor}"
        for named in re.findall(r"`((?:[\w.]+/)+[\w.]+\.py)`", page.read_text()):
            assert (REPO / named).is_file(), f"{page.relative_to(REPO)} names missing {named}"


#: Documents outside the repository that code and docs once cited.
OUTSIDE = re.compile(
    r"CONTRACT\.md|FUNCTIONS\.md|ARCHITECTURE\.md|STYLE\.md|MEASURED\.md"
    r"|\.\./shared/|\bseeds/|\b[Ss]eeds? 00\d\b"
)


def test_nothing_cites_documents_a_clone_does_not_hold() -> None:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py", "*.md", "*.toml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    this = Path(__file__).resolve()
    citing = [
        f"{name}:{number}"
        for name in listed
        if (REPO / name).is_file() and (REPO / name).resolve() != this
        for number, line in enumerate((REPO / name).read_text().splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert citing == [], "cite docs/reference.md instead"
