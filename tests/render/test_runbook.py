"""The plan as a runbook for the Beheermodule web UI (issue #14, section 2): one template per action and language,
one checkbox step per change in plan order with its id, deferred items in later phases, manual items with who
acts, every value escaped, the HTML one self-contained page, and the plan command's --format/--lang."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli.main import cli
from reconciler.plan.model import Action, Deferred, Manual, OrgPlan
from reconciler.render.runbook import LANGUAGES, TEMPLATES, WORDS, render_runbook, render_runbook_html
from reconciler.render.text import render_plan

from .hostile import CORPUS, assert_markdown_safe, assert_terminal_safe, hostile_setup
from .plans import KVK, OTHER_KVK, SAMPLES, change, every_action_plan, plan

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "org.yaml"
#: A checkbox step: `- [ ] N. ...`.
STEP = re.compile(r"^- \[ \] (\d+)\. ", re.M)


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def org_section(text: str, kvk: str) -> str:
    """The markdown of one organisation: from its heading to the next."""
    start = text.index(f"## KvK {kvk}:")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else len(text)]


def steps(text: str) -> list[str]:
    """Each checkbox step with its indented lines."""
    return [m.group(0) for m in re.finditer(r"^- \[ \] \d+\. .*(?:\n  - .*)*", text, re.M)]


# ------------------------------------------------------------------------------------------------ templates
def test_every_action_has_a_template_in_both_languages() -> None:
    assert set(TEMPLATES) == set(Action)                  # fails when an action is added without one
    for action in Action:
        assert set(TEMPLATES[action]) == set(LANGUAGES) == {"nl", "en"}, action
        for lang in LANGUAGES:
            template = TEMPLATES[action][lang]
            assert template.title and template.path and re.fullmatch(r"\d(\.\d+)*(, \d(\.\d+)*)*",
                                                                      template.section), (action, lang)
        assert TEMPLATES[action]["nl"].path != TEMPLATES[action]["en"].path          # really translated
        assert TEMPLATES[action]["nl"].section == TEMPLATES[action]["en"].section
    assert set(WORDS["nl"]) == set(WORDS["en"])


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("action", list(Action))
def test_every_action_renders_with_its_values(action: Action, lang: str) -> None:
    """Each template's fields are filled from the change's params: the values appear, no `{name}` is left."""
    target, params, _ = SAMPLES[action]
    made = plan(OrgPlan(kvk=KVK, name="Acme", revision=1, acting_admin="admin@acme.nl",
                        changes=[change(action, person=target if isinstance(target, str) and "@" in target
                                        else None)]))
    for text in (render_runbook(made, lang), render_runbook_html(made, lang)):
        assert not re.search(r"\{\w+\}", text), text
        assert TEMPLATES[action][lang].title in text
        for key in ("email", "name", "phone", "level", "end_date", "intermediary_kvk"):
            if isinstance(params.get(key), str):
                assert params[key] in text, (action, key)
        assert all(service in text for service in params.get("service_keys", [])), action


def test_a_request_says_the_ui_path_and_its_values() -> None:
    made = plan(OrgPlan(kvk=KVK, name="Acme", revision=1, acting_admin="admin@acme.nl",
                        changes=[change(Action.REQUEST_MEANS, person="new@acme.nl", cost_once=40.0,
                                        cost_yearly=41.0)]))
    (step,) = steps(render_runbook(made))
    assert step.startswith("- [ ] 1. **Nieuwe gebruiker aanvragen** \u2014 new@acme.nl\n")
    assert ("**Gebruikers** \u2192 **Voeg toe** \u2192 niveau EH3, rol Beheerder; naam New, e-mail new@acme.nl"
            in step)
    assert "tweede factor SMS +31612345678; 1-jarig abonnement" in step
    assert "handleiding 3.2 \u00b7 kosten EUR 40.00 eenmalig, EUR 41.00 per jaar" in step
    (en,) = steps(render_runbook(made, "en"))
    assert "level EH3, role Beheerder" in en and "manual 3.2 \u00b7 cost EUR 40.00 once, EUR 41.00 a year" in en


# --------------------------------------------------------------------------------------------- the example
def test_one_checkbox_step_per_change_in_plan_order_with_its_id() -> None:
    made = every_action_plan()
    text = render_runbook(made)
    acme = org_section(text, KVK)
    org = made.organisations[0]
    numbers = [int(n) for n in STEP.findall(acme)]
    assert numbers == list(range(1, len(org.changes) + len(org.deferred) + len(org.manual) + 1))
    phase1 = acme[acme.index("### Fase 1: nu"):acme.index("### Fase 2")]
    found = steps(phase1)
    assert len(found) == len(org.changes) == len(Action)
    for step, item in zip(found, org.changes):                 # the plan's order, each with its own id
        assert TEMPLATES[item.action]["nl"].title in step.split("\n")[0]
        assert step.endswith(f"(stap-id {item.id})</sub>")
    assert all(text.count(c.id) == 1 for c in org.changes)


def test_a_step_waits_for_the_earlier_step_on_the_same_subject() -> None:
    text = render_runbook(every_action_plan())
    found = steps(org_section(text, KVK))
    assert "na stap" not in found[0]
    assert "na stap 10" in found[10] and found[10].startswith("- [ ] 11. **Einddatum van machtigingen")
    assert "na stap 13, 14" in found[14]                      # the chain of 47474747: issued, re-dated, revoked


def test_deferred_items_form_later_phases_by_what_unblocks_them() -> None:
    text = render_runbook(every_action_plan())
    acme = org_section(text, KVK)
    phase2 = acme.index("### Fase 2: wacht op: machtigingen alleen voor actieve gebruikers: de leverancier keurt de "
                        "aanvraag goed, daarna activeert de houder het middel (R7)")
    phase3 = acme.index("### Fase 3: wacht op: de leverancier verwerkt eerst de koppeling aan deze organisatie (R15)")
    assert acme.index("### Fase 1: nu") < phase2 < phase3
    (grant,) = steps(acme[phase2:phase3])
    assert grant.startswith("- [ ] 17. **Machtigingen toevoegen** \u2014 new@acme.nl")
    assert "**Kies diensten**: uwv/werkgeversportaal" in grant
    assert "zodra new@acme.nl actief is \u00b7 na stap 1" in grant            # step 1 requests the means
    assert "stap-id volgt" in grant
    (level,) = steps(acme[phase3:acme.index("### Handmatig")])
    assert "na stap 2" in level and "toelichting: EH2 -&gt; EH3" in level     # linked in step 2
    assert "kies EH3" in level and "tweede factor ongewijzigd" in level       # the new level, from its detail
    en = render_runbook(every_action_plan(), "en")
    assert "### Phase 2: waits for: authorisations are added only to active users (R7)" in en
    assert "once new@acme.nl is active \u00b7 after step 1" in en


def test_deferred_items_of_one_unblocker_share_a_phase() -> None:
    reason = "authorisations are added only to active users; it has no means yet"
    org = OrgPlan(kvk=KVK, name="Acme", revision=1, acting_admin="admin@acme.nl",
                  deferred=[Deferred(KVK, Action.GRANT, ["rvo/tenderned"], "R7", reason, f"u{i}@acme.nl")
                            for i in range(3)] + [Deferred(KVK, Action.LINK_MEANS, "x@acme.nl", "R11",
                                                           "x must first change the e-mail", "x@acme.nl")])
    text = render_runbook(plan(org))
    assert text.count("### Fase 2:") == 1 and text.count("### Fase 3:") == 1 and "Fase 1" not in text
    assert [s.split(" \u2014 ")[1].split("\n")[0] for s in steps(text)] == [
        "u0@acme.nl", "u1@acme.nl", "u2@acme.nl", "x@acme.nl"]
    assert text.index("u2@acme.nl") < text.index("### Fase 3:") < text.index("x@acme.nl")


def test_manual_items_say_who_must_act() -> None:
    made = every_action_plan()
    text = render_runbook(made)
    manual = org_section(text, KVK).split("### Handmatig: wat de reconciler niet kan")[1]
    holder, by_hand = steps(manual)
    assert "\u2014 de houder van het middel: holder@acme.nl" in holder
    assert "vraag de houder van het middel dit te doen" in holder and "waarom: the holder changes it (R11)" in holder
    assert "\u2014 een beheerder (u, met de hand): 47474747" in by_hand
    assert "**Verwijder bedrijf**" in by_hand                 # a beheerder does it in the UI: the path is shown
    assert "geen stap-id" in holder
    unknown = org_section(text, OTHER_KVK)
    assert "een wettelijk vertegenwoordiger: 12345678" in unknown
    en = render_runbook(made, "en")
    assert "\u2014 the holder of the means: holder@acme.nl" in en


@pytest.mark.parametrize(("rule", "reason", "who"), [
    ("R3", "you cannot make yourself a gebruiker; another beheerder must do it", "een andere beheerder"),
    ("R14", "its termination on 2027-01-01 is scheduled and cannot be moved through the backend; ask the "
            "supplier", "de leverancier"),
    ("R19", "changing it to otp is not possible through the backend (the holder or the supplier changes it)",
     "de houder van het middel of de leverancier"),
    ("R4", "EH4 is above the acting admin's own level EH3", "een andere beheerder"),   # by its rule
])
def test_who_acts_is_read_from_the_reason(rule: str, reason: str, who: str) -> None:
    org = OrgPlan(kvk=KVK, name="Acme", revision=1, acting_admin="admin@acme.nl",
                  manual=[Manual(KVK, Action.CHANGE_ROLE, "x@acme.nl", rule, reason, "x@acme.nl")])
    (step,) = steps(render_runbook(plan(org)))
    assert f"\u2014 {who}: x@acme.nl" in step


def test_an_organisation_heading_and_its_acting_admin() -> None:
    text = render_runbook(every_action_plan())
    assert text.startswith("# Draaiboek Beheermodule\n")
    assert "## KvK 99966564: Acme B.V.\n\nLog in als beheerder admin@acme.nl.\n" in text
    assert "## KvK 12345678: Unknown B.V." in text
    assert "Kosten van fase 1: EUR 40.00 eenmalig, EUR 19.95 per jaar." in text
    assert render_runbook(every_action_plan(), "en").startswith("# Beheermodule runbook\n")


def test_an_unknown_language_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown language 'de'"):
        render_runbook(every_action_plan(), "de")


# ------------------------------------------------------------------------------------------------- hostile
HOSTILE = " ".join(CORPUS.values())


def hostile_plan() -> OrgPlan:
    """Every value a step shows, from the corpus."""
    def hostile(action: Action, **params: object) -> object:
        base = dict(SAMPLES[action][1])
        base.update(params)
        return change(action, f"{HOSTILE}@x.nl", person=f"{HOSTILE}@x.nl", params=base, detail=HOSTILE)

    return OrgPlan(
        kvk=KVK, name="Acme " + HOSTILE, revision=1, acting_admin=HOSTILE,
        changes=[hostile(Action.REQUEST_MEANS, name=HOSTILE, email=HOSTILE, phone=HOSTILE),
                 hostile(Action.GRANT, service_keys=[HOSTILE], end_date=HOSTILE),
                 hostile(Action.TERMINATE_MEANS, mode="date", date=HOSTILE),
                 hostile(Action.ISSUE_CHAIN, intermediary_kvk=HOSTILE, service_keys=[HOSTILE])],
        deferred=[Deferred(KVK, Action.GRANT, [HOSTILE], HOSTILE, HOSTILE, HOSTILE, HOSTILE)],
        manual=[Manual(KVK, Action.CHANGE_EMAIL, HOSTILE, HOSTILE, HOSTILE + " the holder", HOSTILE, HOSTILE)])


def test_hostile_values_are_escaped_in_markdown() -> None:
    text = render_runbook(plan(hostile_plan()))
    assert_markdown_safe(text)
    assert "&lt;script&gt;" in text and "\\x1b" in text and "\\u202e" in text      # shown, visibly
    assert all(line.startswith(("#", "- [ ] ", "  - ", "Log in", "De stappen", "Klaar?")) or not line
               for line in text.split("\n"))                 # no value started a line of its own


class _Tags(HTMLParser):
    """The start tags of a page and their attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags(page: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(page)
    return parser.tags


#: Every element the page is made of: a value cannot add one.
OWN_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "section", "ol", "li",
            "label", "input", "b", "div", "span"}


def test_hostile_values_are_escaped_in_html() -> None:
    page = render_runbook_html(plan(hostile_plan()))
    assert_terminal_safe(page.replace("\n", ""))
    assert "<script" not in page and "<!--" not in page
    assert {tag for tag, _ in tags(page)} <= OWN_TAGS
    assert "&lt;script&gt;" in page and "\\x1b" in page


def test_the_html_is_one_self_contained_page_with_the_ids_as_element_ids() -> None:
    made = every_action_plan()
    page = render_runbook_html(made)
    assert page.startswith("<!DOCTYPE html>\n<html lang=\"nl\">") and page.rstrip().endswith("</html>")
    found = tags(page)
    for tag, attrs in found:                                # nothing to fetch, nothing to run
        assert tag not in ("script", "link", "img", "iframe", "object", "embed"), tag
        assert not {"src", "href"} & set(attrs), (tag, attrs)
    assert not re.search(r"https?://|url\(|@import", page)
    ids = [attrs["id"] for tag, attrs in found if tag == "li" and "id" in attrs]
    assert ids == [f"stap-{c.id}" for c in made.changes]
    boxes = [attrs for tag, attrs in found if tag == "input"]
    org = made.organisations
    assert len(boxes) == sum(len(o.changes) + len(o.deferred) + len(o.manual) for o in org)
    assert '<html lang="en">' in render_runbook_html(made, "en")


# ---------------------------------------------------------------------------------------------------- cli
def test_plan_format_runbook_on_the_example(tmp_path: Path) -> None:
    code, out, _ = invoke("plan", str(EXAMPLE), "--backend", f"sandbox:{tmp_path / 'sb.db'}", "--format", "runbook")
    assert code == 2
    assert "## KvK 99966564: Ketelaar Klip Installatietechniek B.V." in out
    assert len(STEP.findall(out)) == 16 and len(re.findall(r"\(stap-id [0-9a-f]{16}\)", out)) == 9  # + 7 deferred
    assert "### Fase 2: wacht op: machtigingen alleen voor actieve gebruikers" in out
    assert "until" not in out.split("### Fase 2")[1]                # the planner's English stays out of a Dutch runbook
    (smit,) = [s for s in steps(out)
               if s.split("\n")[0].endswith("**Machtigingen toevoegen** \u2014 a.smit@ketelaarklip.nl")]
    assert "uwv/werkgeversportaal tot" in smit and "doe dit één keer per einddatum" in smit   # two end dates
    code, page, _ = invoke("plan", str(EXAMPLE), "--backend", f"sandbox:{tmp_path / 'sb.db'}", "--format",
                           "runbook-html", "--lang", "en")
    assert code == 2 and page.startswith("<!DOCTYPE html>") and "Phase 1: now" in page


def test_lang_with_another_format_is_a_usage_error(tmp_path: Path) -> None:
    code, out, err = invoke("plan", str(EXAMPLE), "--backend", f"sandbox:{tmp_path / 'sb.db'}", "--lang", "en")
    assert code != 0 and out == ""
    assert "--lang applies only to --format runbook or runbook-html, not to --format text" in err
    assert not (tmp_path / "sb.db").exists()                  # refused before the backend is touched


def test_render_plan_dispatches_the_runbook_formats() -> None:
    made = every_action_plan()
    assert render_plan(made, "runbook") == render_runbook(made, "nl")
    assert render_plan(made, "runbook-html", lang="en") == render_runbook_html(made, "en")


def test_the_hostile_sandbox_as_a_runbook(tmp_path: Path) -> None:
    """End to end: the backend's and the config's hostile strings, through the plan command."""
    config, backend = hostile_setup(tmp_path / "hostile")
    code, out, _ = invoke("plan", str(config), *backend, "--format", "runbook")
    assert code == 2
    assert_markdown_safe(out)
    assert "&lt;script&gt;" in out
    code, page, _ = invoke("plan", str(config), *backend, "--format", "runbook-html")
    assert code == 2
    assert_terminal_safe(page.replace("\n", ""))
    assert "<script" not in page and {tag for tag, _ in tags(page)} <= OWN_TAGS


def test_a_dutch_runbook_says_in_dutch_what_a_phase_waits_for_and_keeps_a_rule_it_has_no_words_for() -> None:
    """The planner's reasons are English: a Dutch heading says what the rule waits for in its own words, and
    each service's end date with `tot`; a rule without Dutch words keeps the planner's reason (never nothing)."""
    grant = Deferred(KVK, Action.GRANT, ["rvo/tenderned", "uwv/werkgeversportaal"], "R7",
                     "authorisations are added only to active users", "x@acme.nl",
                     "rvo/tenderned until 2030-01-01, uwv/werkgeversportaal until 2031-02-01")
    odd = Deferred(KVK, Action.CHANGE_ROLE, "y@acme.nl", "R17", "the branch number is checked first", "y@acme.nl", "")
    made = plan(OrgPlan(KVK, "Acme", 1, "admin@acme.nl", deferred=[grant, odd]))
    nl, en = render_runbook(made, lang="nl"), render_runbook(made, lang="en")
    assert "wacht op: machtigingen alleen voor actieve gebruikers" in nl and "added only to active" not in nl
    assert "rvo/tenderned tot 2030-01-01, uwv/werkgeversportaal tot 2031-02-01" in nl and " until " not in nl.split(
        "wacht op")[1].split("### ")[0]
    assert "wacht op: the branch number is checked first (R17)" in nl
    assert "waits for: authorisations are added only to active users (R7)" in en
    assert "rvo/tenderned until 2030-01-01" in en


def test_a_later_phase_step_says_which_earlier_later_phase_step_it_waits_for() -> None:
    """A grant that waits for a link (two later phases, one person) points at the link's step, as steps of the
    first phase do (the runbook replay found it missing)."""
    link = Deferred(KVK, Action.LINK_MEANS, "x@acme.nl", "R15", "the link awaits the supplier", "x@acme.nl",
                    "the existing means")
    grant = Deferred(KVK, Action.GRANT, "rvo/tenderned", "R7", "its means is not linked yet", "x@acme.nl",
                     "until 2030-01-01")
    text = render_runbook(plan(OrgPlan(KVK, "Acme", 1, "admin@acme.nl", deferred=[link, grant])), lang="nl")
    steps = [line for line in text.splitlines() if line.startswith("- [ ]")]
    assert len(steps) == 2
    number = re.match(r"- \[ \] (\d+)\.", steps[0]).group(1)     # type: ignore[union-attr]
    grant_part = text[text.index(steps[1]):]
    assert f"na stap {number}" in grant_part.split("\n- [ ]")[0], grant_part
