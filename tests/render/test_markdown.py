"""The plan as one pull-request comment: structure, escaping of values, the length limit, determinism."""

from __future__ import annotations

import copy
import datetime as dt
import re
from pathlib import Path

import pytest

from reconciler.plan.model import Action, OrgPlan, Origin, Plan, Unmanaged
from reconciler.plan.planner import PlanInput, make_plan
from reconciler.render.markdown import DEFAULT_LIMIT, MARKER, MIN_LIMIT, html, md, md_line, render_markdown

from ..plan.conftest import KVK as WORLD_KVK
from ..plan.conftest import TODAY as WORLD_TODAY
from ..plan.conftest import Backend, config
from .mdparse import cells, note, parse
from .plans import KVK, OTHER_KVK, change, every_action_plan, big_plan, over_threshold_plan, plan

EVIL_EMAIL = "eve|x@acme.nl"
EVIL_NAME = "<img src=x onerror=alert(1)> `rm -rf` **bold** [link](http://evil) @octocat ~~gone~~ $x$"
EVIL_DETAIL = "line one\nline two | </details> <!-- hidden"


# ================================================================================================= structure
def test_title_line_has_counts_api_calls_and_cost() -> None:
    text = render_markdown(every_action_plan())
    first, second = text.split("\n")[:2]
    assert first == MARKER
    assert second == ("### Plan: 4 to add, 8 to change, 4 to remove, 2 deferred, 3 manual, 3 unmanaged \u00b7 "
                      "16 API calls \u00b7 cost EUR 40.00 once and EUR 19.95 a year")


def test_escalations_come_first_in_their_own_table() -> None:
    made = every_action_plan()
    text = render_markdown(made)
    doc = parse(text)
    assert doc.tables[0].section == "escalations"
    assert text.index("Privilege escalations") < text.index("<details>")
    escalations = doc.table("escalations")
    assert escalations.header == ["", "organisation", "action", "target", "detail", "origin"]
    expected = [(KVK, f"`{c.action.value}`") for c in made.changes if c.escalation]
    assert [(row[1], row[2]) for row in escalations.rows] == expected
    assert len(expected) == 5 and all(row[0].startswith("`") and "\u26a0" in row[0] for row in escalations.rows)


def test_no_escalation_table_without_escalations() -> None:
    text = render_markdown(over_threshold_plan())
    assert "Privilege escalations" not in text
    assert [t.section for t in parse(text).tables] == ["removals", "changes"]


def test_one_details_section_per_organisation_with_its_tables() -> None:
    made = every_action_plan()
    text = render_markdown(made)
    assert text.count("<details>") == text.count("</details>") == len(made.organisations) == 2
    summaries = [line for line in text.split("\n") if line.startswith("<summary>")]
    assert summaries == [
        "<summary><b>Acme B.V.</b> (KvK 99966564): 16 changes, 2 deferred, 2 manual, 3 unmanaged, 1 warning, "
        "\u26a0\ufe0f 5 privilege escalations</summary>",
        "<summary><b>Unknown B.V.</b> (KvK 12345678): 1 manual</summary>"]
    doc = parse(text)
    changes = doc.table("changes", KVK)
    assert changes.header == ["", "action", "target", "detail", "origin"]
    assert [row[1] for row in changes.rows] == [f"`{a.value}`" for a in Action]
    assert [row[0] for row in changes.rows][:2] == ["`+` \u26a0\ufe0f", "`+`"]
    assert changes.rows[0][4] == "introduced" and changes.rows[3][4] == ""
    assert "a@acme.nl, b@acme.nl" in [row[2] for row in changes.rows]          # a bulk step's targets
    deferred = doc.table("deferred", KVK)
    assert deferred.header == ["action", "target", "user", "detail", "rule", "reason", "origin"]
    assert [(r[0], r[2], r[4]) for r in deferred.rows] == [("`grant`", "new@acme.nl", "R7"),
                                                            ("`change_level`", "", "R15")]
    manual = doc.table("manual", KVK)
    assert [(r[0], r[-2], r[-1]) for r in manual.rows] == [("`change_email`", "R11", "the holder changes it"),
                                                           ("`remove_intermediary`", "R18", "remove it by hand")]
    assert [r[0] for r in doc.table("unmanaged", KVK).rows] == ["means", "authorisation", "intermediary"]
    assert doc.table("manual", OTHER_KVK).rows[0][-2] == "R16"
    assert ("warnings", KVK, "old@acme.nl: subscription is 1y in the backend, 3y in the config") in doc.bullets
    assert ("plan-warnings", None, "branch\\_number is set (R17)") in doc.bullets


def test_origin_column_only_when_an_origin_is_set() -> None:
    made = plan(OrgPlan(KVK, "Acme", 1, "admin@acme.nl", changes=[change(Action.REVOKE)]))
    assert parse(render_markdown(made)).table("changes", KVK).header == ["", "action", "target", "detail"]
    made.organisations[0].changes[0].origin = Origin.DRIFT
    table = parse(render_markdown(made)).table("changes", KVK)
    assert table.header[-1] == "origin" and table.rows[0][-1] == "drift"


def test_force_warning_when_over_the_removal_threshold() -> None:
    forced = render_markdown(over_threshold_plan())
    assert "> **Needs `--force`**" in forced
    assert "> - 99966564 Acme: 5 removals, the limit is 1 of 6 objects" in forced
    assert "**Refused without `--force`**: 5 removals" in forced
    assert forced.index("Needs `--force`") < forced.index("<details>")
    assert "--force" not in render_markdown(every_action_plan())


def test_an_organisation_without_changes_says_so() -> None:
    text = render_markdown(plan(OrgPlan(KVK, "Acme", 4, "admin@acme.nl")))
    assert "(KvK 99966564): no changes</summary>" in text
    assert "Planned on backend revision 4, acting as admin@acme.nl. No changes: the backend matches the config." in text
    assert text.startswith(MARKER + "\n### Plan: 0 to add, 0 to change, 0 to remove \u00b7 0 API calls")


def test_footer_names_what_the_plan_was_made_on() -> None:
    last = render_markdown(every_action_plan()).rstrip("\n").split("\n")[-1]
    assert last == ("<sub>reconciler 0.1.0 \u00b7 today 2026-11-21 \u00b7 backend sandbox:.reconciler/sandbox.db "
                    f"\u00b7 config sha256:{'ab' * 32} \u00b7 compared to base.yaml</sub>")


def test_long_target_lists_are_shortened() -> None:
    emails = [f"u{i}@acme.nl" for i in range(100)]
    made = plan(OrgPlan(KVK, "Acme", 1, "admin@acme.nl", changes=[change(Action.GRANT, emails)]))
    [row] = parse(render_markdown(made)).table("changes", KVK).rows
    assert row[2].endswith("u24@acme.nl and 75 more") and "u25@acme.nl" not in row[2]


def test_deterministic() -> None:
    made = every_action_plan()
    assert render_markdown(made) == render_markdown(made) == render_markdown(copy.deepcopy(made))
    big = big_plan(2, 1500)
    assert render_markdown(big, limit=20_000) == render_markdown(copy.deepcopy(big), limit=20_000)


def test_a_real_plan(tmp_path: Path) -> None:
    backend = Backend()
    backend.means("admin@acme.nl", "beheerder")
    desired = config(tmp_path, """\
users:
  - {email: admin@acme.nl, name: Admin, role: beheerder, level: EH3, second_factor: {type: otp}}
  - {email: boss@acme.nl, name: Boss, role: beheerder, level: EH3, second_factor: {type: otp},
     authorisations: [{service: uwv/werkgeversportaal, until: rolling}]}
chain_authorisations:
  - {intermediary: {kvk: "47474747", name: Accountants Vries}, services: [rvo/tenderned], until: 2029-01-01}
""")
    made = make_plan(PlanInput([desired], backend.world, WORLD_TODAY, {WORLD_KVK: "admin"}, {WORLD_KVK: 7}))
    doc = parse(render_markdown(made))
    assert [(r[2], r[3]) for r in doc.table("escalations").rows] == [("`request_means`", "boss@acme.nl"),
                                                                     ("`issue_chain`", "47474747")]
    deferred = doc.table("deferred", WORLD_KVK)       # a deferred grant shows its end date like a change does
    assert [(r[1], r[3], r[4]) for r in deferred.rows] == [("uwv/werkgeversportaal", "until 2031-11-21", "R7")]


# ================================================================================================== escaping
def evil_plan() -> Plan:
    org = OrgPlan(WORLD_KVK, "<script>alert(1)</script> & Co", 1, "@admin",
                  changes=[change(Action.REQUEST_MEANS, EVIL_EMAIL, kvk=WORLD_KVK, detail=EVIL_NAME,
                                  person=EVIL_EMAIL),
                           change(Action.TERMINATE_MEANS, "plain@acme.nl", kvk=WORLD_KVK, detail=EVIL_DETAIL)],
                  unmanaged=[Unmanaged(WORLD_KVK, "means", "x`y`z@acme.nl", "a\r\nb\rc")],
                  warnings=["# not a heading", "1. not a list", "- not a list either", "  > not a quote"])
    return plan(org, warnings=["--- not a rule"])


def test_values_cannot_break_a_table_row() -> None:
    text = render_markdown(evil_plan())
    doc = parse(text)        # checks every row has as many cells as its header
    [escalation] = doc.table("escalations").rows
    assert escalation[3] == "eve\\|x@acme.nl"
    changes = doc.table("changes", WORLD_KVK)
    assert changes.rows[1][3] == "line one<br>line two \\| &lt;/details&gt; &lt;!-- hidden"
    assert doc.table("unmanaged", WORLD_KVK).rows == [["means", "x\\`y\\`z@acme.nl", "a<br>b<br>c"]]
    assert text.count("<details>") == text.count("</details>") == 1
    assert "line two" not in [line[:8] for line in text.split("\n")]


def test_values_cannot_inject_html_or_markdown() -> None:
    text = render_markdown(evil_plan())
    assert text.count("<!--") == 1 and text.startswith(MARKER)        # only the tool's own marker
    for raw in ("<img", "<script", "`rm -rf`", "**bold**", "[link]", "~~gone~~", "$x$"):
        assert raw not in text, raw
    [row] = parse(text).table("escalations").rows
    assert row[4] == ("&lt;img src=x onerror=alert(1)&gt; \\`rm -rf\\` \\*\\*bold\\*\\* \\[link\\](http:/\u200b/evil) "
                      "@\u200boctocat \\~\\~gone\\~\\~ \\$x\\$")
    assert "<summary><b>&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co</b>" in text
    assert "acting as @\u200badmin" in text


def test_list_items_cannot_start_a_block() -> None:
    doc = parse(render_markdown(evil_plan()))
    assert [text for section, _, text in doc.bullets if section == "warnings"] == [
        "\\# not a heading", "1\\. not a list", "\\- not a list either", "&gt; not a quote"]
    assert [text for section, _, text in doc.bullets if section == "plan-warnings"] == ["\\--- not a rule"]


def test_escape_functions() -> None:
    assert md("a|b`c`*d*_e_[f](g)<h>&i~j$k\\l") == "a\\|b\\`c\\`\\*d\\*\\_e\\_\\[f\\](g)&lt;h&gt;&amp;i\\~j\\$k\\\\l"
    assert md("one\ntwo\r\nthree\u2028four") == "one<br>two<br>three<br>four"
    assert md("bell\x07 nul\x00 rtl\u202e") == "bell\\\\x07 nul\\\\x00 rtl\\\\u202e"   # shown as escapes, not hidden
    assert md("j.bakker@ketelaarklip.nl") == "j.bakker@ketelaarklip.nl"     # no mention inside an e-mail
    assert md("cc @team and (@user)") == "cc @\u200bteam and (@\u200buser)"
    assert md("x" * 2000) == "x" * 1000 + "\u2026"
    assert md_line("12) item") == "12\\) item" and md_line("+ item") == "\\+ item"
    assert html('<a href="x">|`*</a>\nnext') == "&lt;a href=&quot;x&quot;&gt;|`*&lt;/a&gt; next"


def test_rendered_by_a_markdown_parser() -> None:
    """Through a real CommonMark parser with GFM tables: one <details> per organisation, the table rows
    intact, no HTML element from a value."""
    import markdown_it
    rendered = markdown_it.MarkdownIt("commonmark").enable("table").render(render_markdown(evil_plan()))
    assert "<img" not in rendered and "<script" not in rendered and "&lt;img src=x" in rendered
    assert rendered.count("<details>") == rendered.count("</details>") == 1
    rows = re.findall(r"<tr>(.*?)</tr>", rendered, re.S)
    assert [len(re.findall(r"<t[hd]\b", row)) for row in rows] == [5, 5, 5, 5, 4, 4, 4, 3, 3]   # escalations, removals, ...
    assert "eve|x@acme.nl" in rendered and "line one<br>line two | &lt;/details&gt;" in rendered


# ===================================================================================================== limit
def _shown(text: str) -> int:
    """Items that made it into the comment: a change counts once even when in both its tables (a change is
    known by organisation, action and target, which is unique in these plans)."""
    doc = parse(text)
    changes: set[tuple[str | None, str, str]] = set()
    for section in ("escalations", "removals"):
        if any(t.section == section for t in doc.tables):
            changes |= {(row[1], row[2], row[3]) for row in doc.table(section).rows}
    others = 0
    for table in doc.tables:
        if table.section == "changes":
            changes |= {(table.org, row[1], row[2]) for row in table.rows}
        elif table.section not in ("escalations", "removals"):
            others += len(table.rows)
    return len(changes) + others + len(doc.bullets)


def _total(made: Plan) -> int:
    return len(made.warnings) + sum(len(o.changes) + len(o.deferred) + len(o.manual) + len(o.unmanaged)
                                    + len(o.warnings) for o in made.organisations)


def _check_cut(made: Plan, limit: int) -> str:
    text = render_markdown(made, limit=limit)
    assert len(text) <= limit
    assert text.count("<details>") == text.count("</details>")
    depth = 0
    for line in text.split("\n"):
        depth += (line == "<details>") - (line == "</details>")
        assert depth in (0, 1), "details blocks are closed before the next opens"
        if line.startswith("|"):
            cells(line)                       # a whole row
    assert depth == 0
    counted = note(text)
    assert counted is not None, "the note says the comment is cut"
    omitted, total = counted
    assert total == _total(made)
    assert omitted == total - _shown(text) > 0
    assert "See the JSON plan artifact" in text
    return text


@pytest.mark.parametrize("limit", [DEFAULT_LIMIT, 20_000, 5_000, MIN_LIMIT])
def test_a_big_plan_is_cut_between_items(limit: int) -> None:
    made = big_plan(orgs=3, changes=2000)
    text = _check_cut(made, limit)
    assert text.startswith(MARKER + "\n### Plan: 6000 to add, 0 to change, 0 to remove, 600 deferred, 60 manual")
    assert "|" not in text[:text.index("Cut short")], "the note comes before the first table"
    if limit == DEFAULT_LIMIT:
        assert len(text) > DEFAULT_LIMIT - 500, "the comment is filled, not cut early"
        assert text.count("<details>") == 1 and len(parse(text).table("escalations").rows) == 120


def test_the_cut_can_fall_in_the_escalation_table() -> None:
    made = big_plan(orgs=1, changes=3000, escalations_every=1)
    text = _check_cut(made, DEFAULT_LIMIT)
    assert "<details>" not in text
    assert "(and 1 organisation entirely)" in text
    assert 0 < len(parse(text).table("escalations").rows) < 3000


@pytest.mark.parametrize("limit", range(MIN_LIMIT, 30_000, 1_733))
def test_the_cut_holds_at_any_limit(limit: int) -> None:
    _check_cut(big_plan(orgs=2, changes=400, deferred=40, warnings=5), limit)


def test_no_note_when_the_plan_fits() -> None:
    made = every_action_plan()
    text = render_markdown(made)
    assert note(text) is None and "Cut short" not in text
    assert _shown(text) == _total(made)
    assert render_markdown(made, limit=len(text)) == text
    footer = text.rstrip("\n").split("\n")[-1] + "\n"
    without_footer = render_markdown(made, limit=len(text) - 1)
    assert without_footer == text[:-len(footer)] and note(without_footer) is None
    assert note(render_markdown(made, limit=len(without_footer) - 1)) == (1, _total(made))


def test_the_limit_has_a_minimum() -> None:
    with pytest.raises(ValueError, match="at least 1000"):
        render_markdown(every_action_plan(), limit=MIN_LIMIT - 1)


def test_a_plan_without_organisations() -> None:
    made = plan()
    made.today = dt.date(2027, 1, 2)
    text = render_markdown(made)
    assert "<details>" not in text and "today 2027-01-02" in text and note(text) is None
