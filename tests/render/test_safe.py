"""The one place that makes values safe to show (`reconciler.render.safe`), format by format, and the progress
output's choice of bar or plain lines (issue #10, item 2)."""

from __future__ import annotations

import datetime as dt
import io
import json
import os

import pytest

from reconciler.apply.progress import Bar, Lines, Quiet, choose
from reconciler.apply.report import Outcome, StepResult
from reconciler.plan.model import Action, Change, Stage
from reconciler.render.safe import csv_text, html_text, json_text, md, md_html, md_line, rich_markup, terminal

from .hostile import CORPUS, RAW_UNSAFE


@pytest.mark.parametrize("key", sorted(CORPUS))
def test_terminal_leaves_nothing_raw_and_hides_nothing(key: str) -> None:
    value = f"a{CORPUS[key]}b"
    shown = terminal(value)
    assert RAW_UNSAFE.search(shown) is None and "\n" not in shown
    assert shown.startswith("a") and shown.endswith("b") and len(shown) >= len(value)     # escaped, not dropped


def test_terminal_escapes_are_the_ones_a_reviewer_knows() -> None:
    assert terminal("\x1b]0;t\x07\x1b[2J\r\n\t\x00\x7f\x9b\u202e\u2066\u200fok") == \
        "\\x1b]0;t\\x07\\x1b[2J\\r\\n\\t\\x00\\x7f\\x9b\\u202e\\u2066\\u200fok"
    assert terminal("Zoë Ünal, 日本 ⚠️") == "Zoë Ünal, 日本 ⚠️"          # letters and emoji stay


def test_rich_shows_markup_as_written() -> None:
    from rich.text import Text

    value = "[bold red]x[/bold red] [link=https://evil.example]y[/link]\x1b[31m"
    assert Text.from_markup(rich_markup(value)).plain == terminal(value)


@pytest.mark.parametrize("value, expected", [
    ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
    ("<!-- x -->", "&lt;!-- x --&gt;"),
    ("</details>", "&lt;/details&gt;"),
    ("[x](https://evil.example)", "\\[x\\](https:/\u200b/evil.example)"),
    ("a|b `c`", "a\\|b \\`c\\`"),
    ("cc @octocat", "cc @\u200boctocat"),
    ("nul\x00 rlo\u202e cr\rx", "nul\\\\x00 rlo\\\\u202e cr<br>x"),
    ("one\ntwo", "one<br>two"),
])
def test_md_renders_values_literally(value: str, expected: str) -> None:
    assert md(value) == expected


def test_md_through_a_markdown_parser() -> None:
    import markdown_it

    value = " ".join(CORPUS.values())
    row = f"| a | b |\n| --- | --- |\n| {md(value)} | {md(value)} |\n\n- {md_line(value)}\n"
    rendered = markdown_it.MarkdownIt("commonmark").enable("table").render(row)
    assert rendered.count("<td>") == 2 and "<script" not in rendered and "<a " not in rendered
    assert "<!--" not in rendered and "</details>" not in rendered and "<code>" not in rendered
    assert RAW_UNSAFE.search(rendered) is None


def test_md_html_is_for_raw_html_lines() -> None:
    assert md_html('<b a="1">[x](y)</b>\nnext') == "&lt;b a=&quot;1&quot;&gt;&#91;x&#93;(y)&lt;/b&gt; next"


def test_html_text_escapes_text_and_attribute_values() -> None:
    assert html_text("<script>\"'&\x1b\u202e") == "&lt;script&gt;&quot;&#x27;&amp;\\x1b\\u202e"
    assert html_text("line\ntwo") == "line\ntwo"                 # white space in HTML; reads back as it was


def test_json_text_round_trips_with_no_raw_control() -> None:
    value = {"k\u202e": " ".join(CORPUS.values()) + "\u2028\u0085é"}
    text = json_text(value, indent=2)
    assert RAW_UNSAFE.search(text) is None and "é" in text
    assert json.loads(text) == value


@pytest.mark.parametrize("value", ["=1+1", "+1", "-1", "@SUM(1)", "\t=1", "\r=1", "  =1", "\n=1"])
def test_csv_text_never_starts_a_formula(value: str) -> None:
    cell = csv_text(value)
    assert cell.startswith("'") or cell.startswith("\\"), cell
    assert RAW_UNSAFE.search(cell) is None


def test_csv_text_keeps_text_and_line_feeds() -> None:
    assert csv_text("Zoë, \"B\"") == "Zoë, \"B\"" and csv_text("a\nb") == "a\nb"
    assert csv_text("a\x1b[2Jb\rc") == "a\\x1b[2Jb\\rc"


# -------------------------------------------------------------------------------------------- progress
def _change(target: str) -> Change:
    return Change(id="0" * 16, kvk="12345678", action=Action.TERMINATE_MEANS, target=target, stage=Stage.REMOVE,
                  params={"means_id": "m"}, detail="d")


def test_bar_only_on_a_terminal_that_can_draw_it(monkeypatch: pytest.MonkeyPatch) -> None:
    assert type(choose(True)) is Quiet
    read, write = os.pipe()
    with os.fdopen(write, "w") as pipe:
        assert type(choose(False, pipe)) is Lines
    os.close(read)
    leader, follower = os.openpty()
    with os.fdopen(follower, "w") as tty:
        monkeypatch.setenv("TERM", "xterm-256color")
        assert type(choose(False, tty)) is Bar
        monkeypatch.setenv("TERM", "dumb")
        assert type(choose(False, tty)) is Lines
    os.close(leader)


def test_plain_lines_escape_the_data() -> None:
    out = io.StringIO()
    lines = Lines(out)
    lines.start(1)
    lines.done(StepResult(_change("e\x1b]0;pwned\x07@x.nl\r"), Outcome.FAILED, code="R1\x9b"))
    assert out.getvalue() == "[1/1] FAILED  12345678 - terminate_means e\\x1b]0;pwned\\x07@x.nl\\r (d) [R1\\x9b]\n"


def test_the_bar_shows_data_as_text() -> None:
    from rich.console import Console
    from rich.text import Text

    out = io.StringIO()
    bar = Bar(Console(file=out, force_terminal=True, width=200))
    bar.start(1)
    target = "[bold]e\x1b]0;pwned\x07[/bold]@x.nl"
    bar.step(_change(target))
    assert Text.from_markup(bar.bar.tasks[0].description).plain == terminal(f"12345678 terminate_means {target}")
    bar.done(StepResult(_change(target), Outcome.FAILED, message="no [red]x\x1b[2J"))
    bar.finish()
    text = out.getvalue()
    assert "\x1b]0;" not in text and "\x1b[2J" not in text and "\x07" not in text
    assert "e\\x1b]0;pwned\\x07" in text and "no [red]x\\x1b[2J" in text


# ------------------------------------------------------------------------ lone surrogates, invisible text
LONE = "Z \ud800 \udfff"          # what a JSON backend can send ("\ud800"), and no encoder can write


def test_lone_surrogates_become_escapes_every_output_can_write() -> None:
    from reconciler.render.safe import csv_text, html_text, json_text, md, md_html, md_line, rich_markup, terminal

    for escape in (terminal, md, md_line, md_html, html_text, csv_text, rich_markup):
        shown = escape(LONE)
        shown.encode("utf-8")                          # a lone surrogate here would raise UnicodeEncodeError
        assert "\\ud800" in shown and "\\udfff" in shown, escape.__name__
    text = json_text({"name": LONE})
    text.encode("utf-8")
    assert json.loads(text)["name"] == LONE            # the same string for a JSON reader


def test_a_plan_with_a_lone_surrogate_renders_in_every_format() -> None:
    from reconciler.plan.model import Action, Change, OrgPlan, Plan, Stage
    from reconciler.render.json_plan import render_json
    from reconciler.render.markdown import render_markdown
    from reconciler.render.text import render_text

    org = OrgPlan(kvk="12345678", name=LONE, revision=1, acting_admin="a@acme.nl")
    org.changes = [Change(id="1", kvk="12345678", action=Action.TERMINATE_MEANS, target=f"x{LONE}@acme.nl",
                          stage=Stage.REMOVE, params={"means_id": "m"}, detail=LONE, person=f"x{LONE}@acme.nl",
                          removal=True)]
    plan = Plan(today=dt.date(2026, 12, 1), config_digest="", tool_version="0", backend="sandbox:x",
                organisations=[org])
    for render in (render_text, render_markdown, render_json):
        render(plan).encode("utf-8")


def test_invisible_format_characters_are_shown() -> None:
    from reconciler.render.safe import json_text, terminal

    looks_the_same = "boss@good.nl\u200b"
    assert terminal(looks_the_same) == "boss@good.nl\\u200b"
    assert terminal("a\U000e0041") == "a\\U000e0041" and terminal("\ufeff\u00ad") == "\\ufeff\\xad"
    assert "\\u200b" in json_text(looks_the_same) and json.loads(json_text(looks_the_same)) == looks_the_same
    assert json.loads(json_text("a\U000e0041")) == "a\U000e0041"


def test_markdown_breaks_what_github_would_link_by_itself() -> None:
    from reconciler.render.safe import md

    shown = md("see https://evil.example and www.evil.example")
    assert "https://evil" not in shown and "www.evil" not in shown
    assert shown.replace("\u200b", "") == "see https://evil.example and www.evil.example"
