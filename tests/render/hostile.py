"""One corpus of hostile strings, the places a backend or a config can put them, and a check per output format
that none of them arrives in its dangerous form (issue #10, item 2).

The backend carries the whole corpus (its API takes any name; an e-mail address only lacks white space and a
second `@`). A config carries what its schema allows: no control characters in names and e-mail addresses, but
markup, pipes, backticks, brackets, formulas and the bidi override; its catalogue file takes anything.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any, Iterator

import anyio

from reconciler.backend.connect import open_backend
from reconciler.backend.sandbox.controls import SandboxControls
from reconciler.domain.catalogue import Service, bundled_catalogue
from reconciler.domain.levels import Level


#: The corpus: each entry is something that subverts at least one output format when shown raw.
CORPUS: dict[str, str] = {
    "esc_colour": "\x1b[31m",                         # recolours the terminal
    "esc_title": "\x1b]0;pwned\x07",                  # retitles the terminal window (OSC, ended by BEL)
    "esc_clear": "\x1b[2J",                           # clears the screen
    "bel": "\x07",
    "cr": "\r",                                       # returns to the line start: what follows overwrites it
    "nul": "\x00",
    "del": "\x7f",
    "c1_csi": "\x9b1m",                               # the one-byte CSI of C1
    "rlo": "\u202e",                                  # right-to-left override: reorders what a reviewer reads
    "script": "<script>alert(1)</script>",
    "comment": "<!--",
    "details": "</details>",
    "link": "[x](https://evil.example)",
    "pipe": "|",
    "backtick": "`",
    "formula": '=HYPERLINK("http://evil","x")',
    "mention": "@octocat",
    "zwsp": "a\u200bb\ufeff\u00ad",                 # invisible: two names that look the same differ
    "tag": "\U000e0041\U000e0042",                  # tag characters: invisible text
    "autolink": "https://evil.example www.evil.example",   # GitHub links these by itself
}

#: What never appears raw in any output but json's escapes and the renderers' own line ends.
RAW_UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u00ad\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff"
                        "\U000e0000-\U000e007f]")
#: The same for csv, whose records end with CRLF and whose quoted cells may hold a line feed.
CSV_UNSAFE = re.compile("[\x00-\x09\x0b\x0c\x0e-\x1f\x7f-\x9f\u00ad\u2028\u2029\u202a-\u202e\u2066-\u2069"
                        "\ufeff\U000e0000-\U000e007f]")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _join(*keys: str) -> str:
    return " ".join(CORPUS[k] for k in keys)


# ------------------------------------------------------------------------------------ backend strings
KVK = "12345678"
INTERMEDIARY = "47474747"
SERVICE_UUID = "0f0e0d0c-0b0a-4909-8807-060504030201"
#: The organisation's name in the backend (the access report shows it).
BACKEND_ORG = "Acme " + " ".join(CORPUS.values())
#: A means the backend holds and the config does not: its e-mail, its holder's name.
BACKEND_EMAIL = ('=evil' + "".join(CORPUS[k] for k in ("esc_colour", "esc_title", "esc_clear", "bel", "nul", "del",
                                                        "c1_csi", "rlo", "script", "comment", "details", "link",
                                                        "pipe", "backtick")) + "@evil.example")
BACKEND_NAME = CORPUS["formula"] + " " + " ".join(v for k, v in CORPUS.items() if k != "formula")
#: The intermediary's name as the backend has it (a formula that starts with @).
BACKEND_CHAIN = "@SUM(1+1) " + _join("esc_title", "c1_csi", "rlo", "comment", "details", "link", "pipe", "cr")

# ------------------------------------------------------------------------------------- config strings
#: What a config's name fields allow of the corpus (the schema refuses control characters).
CONFIG_TEXT = _join("script", "comment", "details", "link", "pipe", "backtick", "mention", "rlo")
CONFIG_ORG = "Acme " + CONFIG_TEXT
CONFIG_NAME = CORPUS["formula"] + " " + CONFIG_TEXT
CONFIG_EMAIL = "".join(CORPUS[k] for k in ("script", "comment", "details", "link", "pipe", "backtick")) + "@acme.nl"
#: A catalogue file's provider and service name: what its schema allows of the corpus (no control characters).
CATALOGUE_PROVIDER = "-2+3 " + _join("rlo", "script", "pipe")
CATALOGUE_NAME = "Dienst " + CONFIG_TEXT
#: The same service as the backend's catalogue has it: the whole corpus.
BACKEND_PROVIDER = "-2+3 " + _join("esc_clear", "cr", "nul", "del", "rlo")
BACKEND_SERVICE = "Dienst " + " ".join(v for k, v in CORPUS.items() if k != "formula")

#: Every string above, for "it was shown (escaped), so the check was not vacuous".
EVIDENCE = "pwned"


def write_config(folder: Path, *, prune: bool) -> Path:
    """The organisation file (and its catalogue) with the config's hostile strings."""
    (folder / "cat.yaml").write_text(json.dumps({"services": [
        {"key": "evil/dienst", "uuid": SERVICE_UUID, "provider": CATALOGUE_PROVIDER, "name": CATALOGUE_NAME,
         "level": "EH2"}]}), encoding="utf-8")
    q = json.dumps
    path = folder / "org.yaml"
    path.write_text(f"""\
version: 1
organisation: {{kvk: "{KVK}", name: {q(CONFIG_ORG)}}}
catalogue: cat.yaml
policy: {{prune: {str(prune).lower()}}}
users:
  - {{email: admin@acme.nl, name: Admin, role: beheerder, level: EH3, second_factor: {{type: otp}}}}
  - {{email: {q(CONFIG_EMAIL)}, name: {q(CONFIG_NAME)}, role: gebruiker, level: EH3, second_factor: {{type: otp}},
     authorisations: [{{service: evil/dienst, until: rolling}}]}}
chain_authorisations:
  - {{intermediary: {{kvk: "{INTERMEDIARY}", name: {q(CONFIG_NAME)}}}, services: [rvo/tenderned, evil/dienst],
     until: rolling}}
""", encoding="utf-8")
    return path


def seed_backend(db: Path) -> None:
    """Through the API: the organisation (hostile name), an active means (hostile e-mail and name) holding the
    config's hostile catalogue service, and an intermediary with a hostile name."""
    tenderned = bundled_catalogue()["rvo/tenderned"].uuid

    async def work() -> None:
        async with open_backend(f"sandbox:{db}", require_token=False) as client:
            controls = SandboxControls(client)
            org = await controls.create_organisation(KVK, BACKEND_ORG, admin_email="admin@acme.nl",
                                                     admin_name="Admin")
            await controls.add_services([Service(key="evil/dienst", uuid=SERVICE_UUID, provider=BACKEND_PROVIDER,
                                                 name=BACKEND_SERVICE,
                                                 level=Level.EH2)])
            admin = client.with_token(org.token)
            made = await admin.request_means(KVK, email=BACKEND_EMAIL, name=BACKEND_NAME, role="gebruiker",
                                             level="EH3", second_factor="otp")
            means_id = str(made.result["id"])
            await controls.step(means_id, "approve")
            await controls.step(means_id, "activate")
            await admin.grant(KVK, [means_id], [tenderned, SERVICE_UUID])
            await admin.issue_chain(KVK, INTERMEDIARY, [tenderned], name=BACKEND_CHAIN)

    anyio.run(work)


def hostile_setup(folder: Path, *, prune: bool = False) -> tuple[Path, list[str]]:
    """(the config, the `--backend` arguments) of a sandbox seeded with the backend's hostile strings."""
    folder.mkdir(parents=True, exist_ok=True)
    seed_backend(folder / "sb.db")
    return write_config(folder, prune=prune), ["--backend", f"sandbox:{folder / 'sb.db'}"]


# ------------------------------------------------------------------------------------------------ checks
def assert_terminal_safe(text: str) -> None:
    """No control character (but the renderer's line feeds) and no bidi control, raw."""
    found = RAW_UNSAFE.search(text)
    assert found is None, f"raw {found.group()!r} at {found.start()}: {text[max(0, found.start() - 60):][:120]!r}"


def _cells(line: str) -> list[str]:
    """A table row's cells the way GitHub splits them: at each `|` that no backslash escapes."""
    return re.split(r"(?<!\\)\|", line.strip().removeprefix("|").removesuffix("|"))


def _tables(text: str) -> Iterator[list[str]]:
    """Each markdown table: its consecutive `|` lines."""
    block: list[str] = []
    for line in text.split("\n") + [""]:
        if line.startswith("|"):
            block.append(line)
        elif block:
            yield block
            block = []


def assert_markdown_safe(text: str, *, comments: int = 0) -> None:
    """No raw control, HTML element or comment from a value, no link made by a value, and every table row has
    the header's cells (a `|` in a value did not split one). `comments`: the tool's own `<!--` markers."""
    assert_terminal_safe(text)
    for raw in ("<script", "[x](", "https://evil", "www.evil"):       # GitHub links the last two by itself
        assert raw not in text, raw
    assert text.count("<!--") == text.count("-->") == comments
    assert all(line == "</details>" for line in text.split("\n") if "</details>" in line)    # only its own
    assert text.count("</details>") == text.count("<details>")
    for table in _tables(text):
        width = len(_cells(table[0]))
        assert all(len(_cells(row)) == width for row in table), table
    import markdown_it

    rendered = markdown_it.MarkdownIt("commonmark").enable("table").render(text)
    assert "<script" not in rendered and "evil.example\">x</a>" not in rendered
    assert rendered.count("<details>") == rendered.count("</details>") == text.count("<details>")


def assert_html_safe(page: str) -> None:
    """Only the page's own script; no element from a value; no raw control."""
    assert_terminal_safe(page.replace("\n", ""))
    assert "<script>alert" not in page and "<!-- " not in page
    assert page.count("<script>") == page.count("</script>") == 1          # the page's own sorting script
    script = page[page.index("<script>"):]
    assert "alert" not in script and "evil" not in script


def assert_csv_safe(text: str) -> list[list[str]]:
    """No cell a spreadsheet would run as a formula, no raw control; the records (header first)."""
    found = CSV_UNSAFE.search(text.lstrip("\ufeff").replace("\r\n", ""))     # the file's own BOM may lead
    assert found is None, f"raw {found.group()!r}"
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"), newline="")))
    for row in rows:
        for cell in row:
            assert not cell.lstrip(" ").startswith(FORMULA_START), cell
    return rows


def strings(data: Any) -> Iterator[str]:
    """Every string in a JSON value, keys too."""
    if isinstance(data, str):
        yield data
    elif isinstance(data, dict):
        for key, value in data.items():
            yield key
            yield from strings(value)
    elif isinstance(data, list):
        for value in data:
            yield from strings(value)


def assert_json_safe(text: str, *originals: str) -> Any:
    """Valid JSON without a raw control or bidi character, in which each of `originals` reads back exactly."""
    assert_terminal_safe(text)
    data = json.loads(text)
    found = set(strings(data))
    for original in originals:
        assert any(original in s for s in found), original
    return data
