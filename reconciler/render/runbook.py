"""A plan as a runbook: the steps a beheerder carries out by hand in the Beheermodule web UI (issue #14).

For an organisation that has no API, the plan still says what to do; this renders it as work for a person:

- `render_runbook(plan, lang)`: Markdown with task-list checkboxes (`- [ ] 1. ...`), so it renders in a pull
  request; `render_runbook_html(plan, lang)`: the same as one printable, self-contained HTML page (no script,
  no external resource).
- Per organisation (KvK and name as its heading): phase 1 holds the plan's changes as numbered steps in the
  plan's order (already the safe order, stages 1..4); each step gives the path in the UI (tab, button, the
  values to enter), the manual section it follows, its cost (`cost.money`), the earlier step it waits for, and
  the plan item's id (`Change.id`: visible at the end of the step, and the element id in the HTML), so a step
  and the API call it stands for are one thing.
- Deferred items form later phases, one per unblocker (the item's rule and reason); their steps have no id yet
  (the plan that runs once they are unblocked makes one). Manual items come last and say who must act (the
  holder, another beheerder, the supplier, a legal representative), read from their reason.

The UI wording follows the Beheermodule manual v5.5 (../shared/domain/manuals/), in our own sentences, in Dutch
(`nl`, the default) or English (`en`); the UI's own labels stay Dutch in both, as the screen shows them. Every
text a step is made of is in ONE table, `TEMPLATES` (action -> language -> template). Every value from the
config or the backend is escaped with `reconciler.render.safe` (`md` for Markdown, `html_text` for HTML).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from reconciler.plan.cost import money
from reconciler.plan.model import PER_SERVICE, Action, Change, Deferred, Manual, OrgPlan, Plan, target_list
from reconciler.render.safe import html_text, md, terminal

LANGUAGES = ("nl", "en")


@dataclass(frozen=True)
class Template:
    """One action in one language: the step's title and its path through the UI.

    In `path` (and `title`), `{name}` is a value (escaped where it is filled in) and `**Label**` a label of the
    UI (a tab, a button, a field), shown bold."""

    section: str          # the manual's section the step follows
    title: str
    path: str


def _both(section: str, nl: tuple[str, str], en: tuple[str, str]) -> dict[str, Template]:
    return {"nl": Template(section, *nl), "en": Template(section, *en)}


#: The one table of step texts: for every plan action, per language, what to do in the Beheermodule.
TEMPLATES: dict[Action, dict[str, Template]] = {
    Action.REQUEST_MEANS: _both(
        "3.2",
        ("Nieuwe gebruiker aanvragen",
         "**Gebruikers** → **Voeg toe** → niveau {level}, rol {role}; naam {name}, e-mail {email} (houd de "
         "ID-gegevens en een kopie van het identiteitsbewijs bij de hand); type {type}; tweede factor {factor}; "
         "{subscription}; vink het akkoord met de kosten aan → **Voeg gebruiker toe**"),
        ("Request a new user",
         "**Gebruikers** → **Voeg toe** (add) → level {level}, role {role}; name {name}, e-mail {email} (have the "
         "ID details and a copy of the identity document at hand); type {type}; second factor {factor}; "
         "{subscription}; tick the agreement to the costs → **Voeg gebruiker toe**")),
    Action.LINK_MEANS: _both(
        "3.2.2",
        ("Bestaande gebruiker koppelen",
         "ga naar {from_kvk} → **Gebruikers** → open {email} → de drie puntjes → **Koppel aan een "
         "andere organisatie** → rol {role}; vink KvK {kvk} aan; {subscription}; akkoord met de kosten → "
         "**Koppel deze gebruiker aan de geselecteerde organisaties**"),
        ("Link an existing user",
         "switch to {from_kvk} → **Gebruikers** → open {email} → the three dots → **Koppel aan een "
         "andere organisatie** (link to another organisation) → role {role}; tick KvK {kvk}; {subscription}; "
         "agree to the costs → **Koppel deze gebruiker aan de geselecteerde organisaties**")),
    Action.CHANGE_ROLE: _both(
        "3.1.1",
        ("Rol wijzigen",
         "**Gebruikers** → open {email} → potlood achter **Rol** → kies {role} → **Rol wijzigen**"),
        ("Change the role",
         "**Gebruikers** → open {email} → the pencil after **Rol** (role) → choose {role} → **Rol wijzigen**")),
    Action.CHANGE_LEVEL: _both(
        "3.8.1",
        ("Niveau wijzigen",
         "**Gebruikers** → open {email} → potlood achter **Niveau** → kies {level} → houd de rol → tweede factor "
         "{factor} (alleen gevraagd als het middel er nog geen heeft) → akkoord met de kosten → bevestig; de "
         "leverancier verwerkt het"),
        ("Change the level",
         "**Gebruikers** → open {email} → the pencil after **Niveau** (level) → choose {level} → keep the role → "
         "second factor {factor} (asked only when the means has none yet) → agree to the costs → confirm; the "
         "supplier processes it")),
    Action.CHANGE_TYPE: _both(
        "3.8.2",
        ("Type middel wijzigen",
         "**Gebruikers** → open {email} → potlood naast **Type** → kies {type}, {subscription} → vink aan dat u "
         "de gevolgen kent → **Ja, wijzig middel**; de machtigingen vervallen en worden daarna opnieuw "
         "toegekend (R13)"),
        ("Change the type of means",
         "**Gebruikers** → open {email} → the pencil next to **Type** → choose {type}, {subscription} → tick that "
         "you know the consequences → **Ja, wijzig middel**; its authorisations lapse and are granted again "
         "afterwards (R13)")),
    Action.CHANGE_PHONE: _both(
        "3.7.1",
        ("Mobiel nummer wijzigen",
         "**Gebruikers** → open {email} → potlood achter het nummer bij **Tweede factor** → {phone} → "
         "**Wijzig telefoonnummer**"),
        ("Change the mobile number",
         "**Gebruikers** → open {email} → the pencil after the number at **Tweede factor** (second factor) → "
         "{phone} → **Wijzig telefoonnummer**")),
    Action.CHANGE_EMAIL: _both(
        "3.7.2",
        ("E-mailadres wijzigen (vóór activatie)",
         "**Gebruikers** → open {email} (status Wachten op activatie) → potlood achter **E-mailadres** → "
         "{new_email} → **Wijzig e-mailadres**"),
        ("Change the e-mail address (before activation)",
         "**Gebruikers** → open {email} (status Wachten op activatie) → the pencil after **E-mailadres** → "
         "{new_email} → **Wijzig e-mailadres**")),
    Action.RESEND_INVITATION: _both(
        "3.5.3",
        ("Nieuwe activatie-uitnodiging sturen",
         "**Gebruikers** → open {email} → bij **Status** (Activatie verlopen) → **Verstuur nieuwe uitnodiging**; "
         "een nieuwe activatiebrief kost geld"),
        ("Send a new activation invitation",
         "**Gebruikers** → open {email} → at **Status** (Activatie verlopen) → **Verstuur nieuwe uitnodiging**; a "
         "new activation letter costs money")),
    Action.TERMINATE_MEANS: _both(
        "3.4",
        ("Middel beëindigen",
         "**Gebruikers** → klap {email} open → de drie puntjes → **eHerkenning voor deze gebruiker opzeggen** → "
         "{when} → vink andere organisaties alleen aan als het plan dat zegt → **Ja, eHerkenning opzeggen**"),
        ("End the means",
         "**Gebruikers** → open {email} → the three dots → **eHerkenning voor deze gebruiker opzeggen** (cancel) "
         "→ {when} → tick other organisations only when the plan says so → **Ja, eHerkenning opzeggen**")),
    Action.GRANT: _both(
        "4.2",
        ("Machtigingen toevoegen",
         "**Machtigingen** → **Voeg toe** → **Kies diensten**: {services} → **Voeg diensten toe** → **Kies "
         "gebruikers**: {users} → **Voeg gebruikers toe** → **Kies de einddatum**: {end} → **Kies einddatum** → "
         "controleer het overzicht → **Voeg machtiging(en) toe**"),
        ("Add authorisations",
         "**Machtigingen** (authorisations) → **Voeg toe** → **Kies diensten**: {services} → **Voeg diensten "
         "toe** → **Kies gebruikers**: {users} → **Voeg gebruikers toe** → **Kies de einddatum**: {end} → **Kies "
         "einddatum** → check the overview → **Voeg machtiging(en) toe**")),
    Action.SET_END_DATE: _both(
        "4.4, 4.5",
        ("Einddatum van machtigingen wijzigen",
         "**Machtigingen** → **Voeg toe** → **Kies diensten**: {services} → **Kies gebruikers**: {users} → "
         "**Kies de einddatum** → **Bepaal zelf de datum**: {end} → **Voeg machtiging(en) toe** (dit "
         "overschrijft de einddatum)"),
        ("Change the end date of authorisations",
         "**Machtigingen** → **Voeg toe** → **Kies diensten**: {services} → **Kies gebruikers**: {users} → "
         "**Kies de einddatum** → **Bepaal zelf de datum** (choose the date): {end} → **Voeg machtiging(en) toe** "
         "(this overwrites the end date)")),
    Action.REVOKE: _both(
        "3.11.2",
        ("Machtigingen intrekken",
         "**Gebruikers** → open {users} → **Reguliere machtigingen** → klap {services} open → **intrekken**; "
         "voor elke gebruiker en dienst, per direct en definitief"),
        ("Revoke authorisations",
         "**Gebruikers** → open {users} → **Reguliere machtigingen** → open {services} → **intrekken** (revoke); "
         "for each user and service, at once and for good")),
    Action.ISSUE_CHAIN: _both(
        "5.2",
        ("Ketenmachtiging afgeven",
         "**Ketenmachtigingen** → **afgegeven** → **Voeg toe** → KVK-nummer {intermediary} → **Selecteer "
         "bedrijf** → **Kies diensten**: {services} → duur tot {end} → akkoord met de kosten van een nieuwe "
         "intermediair → **Leg ketenmachtiging vast** (staat de intermediair er al: klap hem open → **Voeg "
         "machtiging toe**)"),
        ("Issue a chain authorisation",
         "**Ketenmachtigingen** (chain authorisations) → **afgegeven** (issued) → **Voeg toe** → KVK-nummer "
         "{intermediary} → **Selecteer bedrijf** → **Kies diensten**: {services} → duration until {end} → agree "
         "to the costs of a new intermediary → **Leg ketenmachtiging vast** (when the intermediary is listed "
         "already: open it → **Voeg machtiging toe**)")),
    Action.SET_CHAIN_END_DATE: _both(
        "5.2",
        ("Einddatum van ketenmachtigingen wijzigen",
         "**Ketenmachtigingen** → **afgegeven** → klap {intermediary} open → bij **Machtigingen**: {services} → "
         "zet **geldig tot** op {end} (leg de dienst zo nodig opnieuw vast via **Voeg machtiging toe** met die "
         "duur)"),
        ("Change the end date of chain authorisations",
         "**Ketenmachtigingen** → **afgegeven** → open {intermediary} → at **Machtigingen**: {services} → set "
         "**geldig tot** (valid until) to {end} (if need be, record the service again through **Voeg machtiging "
         "toe** with that duration)")),
    Action.REVOKE_CHAIN: _both(
        "5.2",
        ("Ketenmachtigingen beëindigen",
         "**Ketenmachtigingen** → **afgegeven** → klap {intermediary} open → bij **Machtigingen** de diensten "
         "{services} verwijderen; gaat de laatste dienst weg, dan gaat de intermediair mee"),
        ("End chain authorisations",
         "**Ketenmachtigingen** → **afgegeven** → open {intermediary} → at **Machtigingen** remove the services "
         "{services}; when the last one goes, the intermediary goes with it")),
    Action.REMOVE_INTERMEDIARY: _both(
        "5.2",
        ("Intermediair verwijderen",
         "**Ketenmachtigingen** → **afgegeven** → klap {intermediary} open → **Intermediair informatie** → de "
         "drie puntjes → **Verwijder bedrijf** → **Ja, verwijder intermediair**; kan niet ongedaan worden"),
        ("Remove the intermediary",
         "**Ketenmachtigingen** → **afgegeven** → open {intermediary} → **Intermediair informatie** → the three "
         "dots → **Verwijder bedrijf** → **Ja, verwijder intermediair**; this cannot be undone")),
}

#: The tool's own words, per language (everything a step says besides its template and values).
WORDS: dict[str, dict[str, str]] = {
    "nl": {
        "title": "Draaiboek Beheermodule",
        "intro": "De stappen van het plan van {today}, uit te voeren in de webinterface van de Beheermodule, in "
                 "deze volgorde. Vink een stap af als hij gedaan is.",
        "total": "Kosten van fase 1: {once} eenmalig, {yearly} per jaar.",
        "org": "KvK {kvk}: {name}",
        "acting": "Log in als beheerder {admin}.",
        "nothing": "Niets te doen: de Beheermodule komt overeen met de configuratie.",
        "force": "Let op: dit plan verwijdert meer dan policy.max_removals toestaat; controleer de verwijderingen.",
        "phase1": "Fase 1: nu",
        "phase": "Fase {n}: {why}",
        "waits_for": "wacht op: {reason} ({rule})",
        "manual": "Handmatig: wat de reconciler niet kan",
        "per_date": "doe dit één keer per einddatum, met de diensten van die datum",
        "section": "handleiding {section}",
        "cost": "kosten {costs}",
        "once": "{amount} eenmalig",
        "yearly": "{amount} per jaar",
        "free": "geen kosten",
        "after_step": "na stap {steps}",
        "after_activation": "zodra {person} actief is",
        "for": "voor {person}",
        "id": "stap-id",
        "no_id": "stap-id volgt in het plan dat na deze fase wordt gemaakt",
        "manual_id": "geen stap-id: de reconciler kan dit niet doen",
        "who": "Wie: {who}",
        "why": "waarom: {reason} ({rule})",
        "see": "toelichting: {detail}",
        "holder": "de houder van het middel",
        "beheerder": "een andere beheerder",
        "supplier": "de leverancier",
        "legal": "een wettelijk vertegenwoordiger",
        "someone": "een beheerder (u, met de hand)",
        "ask": "Niet in uw Beheermodule: vraag {who} dit te doen, en controleer daarna het resultaat.",
        "or": " of ",
        "unknown": "…",
        "none": "geen",
        "unchanged": "ongewijzigd",
        "shared_org": "een organisatie waar zowel u als de gebruiker al in zitten",
        "verify": "Klaar? Download de overzichten (gebruikers, machtigingen, afgegeven ketenmachtigingen) en "
                  "controleer het resultaat met `reconciler drift`.",
    },
    "en": {
        "title": "Beheermodule runbook",
        "intro": "The steps of the plan of {today}, to carry out in the Beheermodule web UI, in this order. Tick a "
                 "step once it is done.",
        "total": "Cost of phase 1: {once} once, {yearly} a year.",
        "org": "KvK {kvk}: {name}",
        "acting": "Log in as the beheerder {admin}.",
        "nothing": "Nothing to do: the Beheermodule matches the config.",
        "force": "Note: this plan removes more than policy.max_removals allows; check the removals.",
        "phase1": "Phase 1: now",
        "phase": "Phase {n}: {why}",
        "waits_for": "waits for: {reason} ({rule})",
        "manual": "By hand: what the reconciler cannot do",
        "per_date": "do this once per end date, with the services of that date",
        "section": "manual {section}",
        "cost": "cost {costs}",
        "once": "{amount} once",
        "yearly": "{amount} a year",
        "free": "no cost",
        "after_step": "after step {steps}",
        "after_activation": "once {person} is active",
        "for": "for {person}",
        "id": "step id",
        "no_id": "step id follows in the plan made after this phase",
        "manual_id": "no step id: the reconciler cannot do this",
        "who": "Who: {who}",
        "why": "why: {reason} ({rule})",
        "see": "detail: {detail}",
        "holder": "the holder of the means",
        "beheerder": "another beheerder",
        "supplier": "the supplier",
        "legal": "a legal representative",
        "someone": "a beheerder (you, by hand)",
        "ask": "Not in your Beheermodule: ask {who} to do this, and check the result afterwards.",
        "or": " or ",
        "unknown": "…",
        "none": "none",
        "unchanged": "unchanged",
        "shared_org": "an organisation both you and the user are in already",
        "verify": "Done? Download the overviews (users, authorisations, issued chain authorisations) and check the "
                  "result with `reconciler drift`.",
    },
}

#: Values of the plan in the words of the UI (Dutch labels on screen; the same in both languages).
_ROLE = {"beheerder": "Beheerder", "gebruiker": "Reguliere gebruiker"}
_TYPE = {"regulier": "Regulier middel", "belastingdienst": "Belastingdienstmiddel"}
_SUBSCRIPTION = {"nl": {"1y": "1-jarig abonnement", "3y": "3-jarig abonnement"},
                 "en": {"1y": "1-jarig abonnement (1 year)", "3y": "3-jarig abonnement (3 years)"}}
_WHEN = {"nl": {"now": "**Per direct**", "date": "**Op een specifieke datum in de toekomst**: {date}",
                "end_of_contract": "**Aan het einde van de lopende contractperiode**"},
         "en": {"now": "**Per direct** (at once)", "date": "**Op een specifieke datum in de toekomst**: {date}",
                "end_of_contract": "**Aan het einde van de lopende contractperiode** (end of the contract)"}}
_FIVE_YEARS = {"nl": "5 jaar (meest gekozen)", "en": "5 jaar (5 years, the default)"}

#: Who must act on a manual item, read from its reason (first match of each; in this order).
_WHO = [("legal", re.compile(r"legal representative", re.I)),
        ("beheerder", re.compile(r"another beheerder|admin with that level|another admin|token of one", re.I)),
        ("holder", re.compile(r"\bholder\b", re.I)),
        ("supplier", re.compile(r"\bsupplier\b", re.I))]
#: When the reason names no one: who the rule says acts.
_WHO_BY_RULE = {"R3": "beheerder", "R4": "beheerder", "R11": "holder", "R14": "supplier", "R16": "legal",
                "R19": "holder", "R1": "beheerder"}
#: Rules whose deferred steps wait for the person's means to become active (R5: approval and activation; R7:
#: authorisations only for active users).
_ACTIVATION_RULES = frozenset({"R5", "R7"})
#: What a later phase waits for, in Dutch, by the rule that holds it back: the planner's reasons are English, and a
#: Dutch runbook heading should not quote them. A rule not listed here keeps the planner's reason.
_WAITS_NL = {
    "R1": "eerst moet een andere beheerder actief zijn (er is altijd een actieve beheerder)",
    "R2": "eerst het hogere niveau: een beheerder heeft minstens EH2+",
    "R4": "eerst het niveau of de koppeling van de beheerder die dit uitvoert",
    "R5": "de leverancier keurt de aanvraag goed, daarna activeert de houder het middel",
    "R6": "de leverancier verwerkt eerst de lopende wijziging van dit middel",
    "R7": "machtigingen alleen voor actieve gebruikers: de leverancier keurt de aanvraag goed, daarna activeert de "
          "houder het middel",
    "R8": "eerst het niveau dat de diensten vragen",
    "R11": "eerst het nieuwe e-mailadres",
    "R13": "eerst het type van het middel",
    "R15": "de leverancier verwerkt eerst de koppeling aan deze organisatie",
}


# ------------------------------------------------------------------------------------------------ markup
@dataclass(frozen=True)
class _Markup:
    """How our own text, a value, a label and a list of values are written in one output format."""

    own: Callable[[str], str]            # text we wrote (templates, words)
    value: Callable[[object], str]       # text from the config or the backend
    label: Callable[[str], str]          # a UI label (our text), bold

    def fill(self, template: str, values: dict[str, str]) -> str:
        """`template` with `**Label**` as labels and `{name}` as the (already escaped) values."""
        out = []
        for piece in re.split(r"(\*\*.+?\*\*|\{\w+\})", template):
            if piece.startswith("**") and piece.endswith("**") and len(piece) > 4:
                out.append(self.label(piece[2:-2]))
            elif piece.startswith("{") and piece.endswith("}"):
                out.append(values[piece[1:-1]])
            else:
                out.append(self.own(piece))
        return "".join(out)


_MD = _Markup(own=lambda text: text, value=md, label=lambda text: f"**{text}**")
_HTML = _Markup(own=lambda text: html.escape(text, quote=True), value=html_text,
                label=lambda text: f"<b>{html.escape(text, quote=True)}</b>")
_TERMINAL = _Markup(own=lambda text: text, value=terminal, label=lambda text: text)
#: The formats `step_text` writes in.
_MARKUPS = {"markdown": _MD, "html": _HTML, "terminal": _TERMINAL}


def _values(m: _Markup, items: Iterable[object]) -> str:
    return ", ".join(m.value(item) for item in items)


# ------------------------------------------------------------------------------------------------- steps
@dataclass
class _Step:
    """One numbered step, in the words of one language and format."""

    number: int
    title: str
    person: str                           # who or what the step is about (escaped)
    path: str
    facts: list[str]                      # section, cost, waits for (escaped / own)
    ident: str | None                     # the plan item id (None: a deferred or manual item)
    who: str = ""                         # a manual item: who must act
    no_id: str = "no_id"                  # without an id: the WORDS key that says why


def _fields(m: _Markup, lang: str, item: Change | Deferred | Manual) -> dict[str, str]:
    """Every `{name}` a template may use, escaped; what the item does not say is `…` (its detail says it)."""
    params: dict[str, Any] = item.params if isinstance(item, Change) else _blocked_params(item)
    w = WORDS[lang]
    unknown = m.own(w["unknown"])
    targets = target_list(item.target)
    people = [t for t in targets if "@" in t] or ([item.person] if item.person else [])
    email = item.person or (targets[0] if targets else "")
    services = params.get("service_keys") or ([] if isinstance(item, Change) else
                                              [t for t in targets if "@" not in t])

    def value(key: str, words: dict[str, str] | None = None) -> str:
        raw = params.get(key)
        if raw is None:
            return unknown
        return m.own(words[raw]) if words and raw in words else m.value(raw)

    factor = params.get("second_factor")
    if factor is None:
        keeps = item.action is Action.CHANGE_LEVEL or not isinstance(item, Change)
        factor_text = m.own(w["unchanged"] if keeps else w["none"])
    elif factor == "sms":
        factor_text = "SMS " + (m.value(params["phone"]) if params.get("phone") else unknown)
    else:
        factor_text = m.own("OTP device") if factor == "otp" else m.value(factor)
    end = params.get("end_date")
    if isinstance(item, Change):
        end_text = m.value(end) if end else m.own(_FIVE_YEARS[lang])
    else:
        dates = item.detail.removeprefix("until ")
        end_text = m.value(dates.replace(" until ", " tot ") if lang == "nl" else dates) if item.detail else unknown
    mode = params.get("mode")
    when = (m.fill(_WHEN[lang][mode], {"date": m.value(params.get("date") or "")}) if mode in _WHEN[lang]
            else unknown)
    target_kvk = params.get("intermediary_kvk") or (targets[0] if targets else "")
    return {
        "email": m.value(email) if email else unknown,
        "new_email": value("email"),
        "name": value("name"),
        "level": value("level"),
        "role": value("role", _ROLE),
        "type": value("type", _TYPE),
        "subscription": value("subscription", _SUBSCRIPTION[lang]),
        "factor": factor_text,
        "phone": value("phone"),
        "kvk": m.value(item.kvk),
        "from_kvk": m.value(params["from_kvk"]) if params.get("from_kvk") else m.own(w["shared_org"]),
        "users": _values(m, people) if people else unknown,
        "services": _values(m, services) if services else unknown,
        "end": end_text,
        "when": when,
        "intermediary": m.value(target_kvk) if target_kvk else unknown,
    }


#: A blocked item's detail "old -> new" names the value it wants for these actions.
_WANTED = {Action.CHANGE_LEVEL: "level", Action.CHANGE_ROLE: "role", Action.CHANGE_EMAIL: "email"}


def _blocked_params(item: Deferred | Manual) -> dict[str, Any]:
    """What a deferred or manual item has of its operation: the new value of its detail ("EH2 -> EH3")."""
    key = _WANTED.get(item.action)
    found = re.fullmatch(r".*->\s*(\S+)\s*", item.detail) if key else None
    return {key: found.group(1)} if key and found else {}


def cost_text(lang: str, change: Change) -> str:
    """What a step costs, in words of `lang` (the walk on a terminal says it the same way)."""
    w = WORDS[lang]
    parts = []
    if change.cost_once:
        parts.append(w["once"].format(amount=money(change.cost_once)))
    if change.cost_yearly:
        parts.append(w["yearly"].format(amount=money(change.cost_yearly)))
    return w["cost"].format(costs=", ".join(parts)) if parts else w["free"]


def _cost(m: _Markup, lang: str, change: Change) -> str:
    return m.own(cost_text(lang, change))


def _subjects(item: Change | Deferred | Manual) -> set[str]:
    """What a step acts on (e-mail addresses, means ids, intermediaries): a later step on one of them waits."""
    if not isinstance(item, Change):         # a blocked grant's targets are services: its person is the subject
        return {item.person} if item.person else {t for t in target_list(item.target) if t}
    found = {t for t in target_list(item.target) if t}
    if item.person:
        found.add(item.person)
    for key in ("means_id", "intermediary_kvk", "email"):
        if item.params.get(key):
            found.add(str(item.params[key]))
    found.update(str(i) for i in item.params.get("means_ids") or [])
    return found


def _who(item: Manual) -> list[str]:
    """Who must act on a manual item: as its reason says, else as its rule says."""
    found = [key for key, pattern in _WHO if pattern.search(item.reason)]
    if not found and item.rule in _WHO_BY_RULE:
        found = [_WHO_BY_RULE[item.rule]]
    return found or ["someone"]


@dataclass(frozen=True)
class StepText:
    """What one step says, escaped for its format: the renderer's steps and `apply --executor runbook`'s walk
    are made of the same words."""

    title: str
    person: str          # who or what the step is about
    path: str            # the path through the UI, with the values to enter
    section: str         # the manual's section it follows ("3.2"; our text)


def step_text(item: Change | Deferred | Manual, lang: str = "nl", fmt: str = "terminal") -> StepText:
    """One item's title, subject and UI path in `lang`, escaped for `fmt` (`terminal`, `markdown` or `html`)."""
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}: use one of {', '.join(LANGUAGES)}")
    return _step_text(_MARKUPS[fmt], lang, item)


def _step_text(m: _Markup, lang: str, item: Change | Deferred | Manual) -> StepText:
    template = TEMPLATES[item.action][lang]
    person = item.person or ", ".join(target_list(item.target))
    return StepText(m.own(template.title), m.value(person), m.fill(template.path, _fields(m, lang, item)),
                    template.section)


@dataclass
class _Phase:
    heading: str
    steps: list[_Step]


@dataclass
class _Org:
    heading: str
    notes: list[str]
    phases: list[_Phase]


def _organisation(m: _Markup, lang: str, org: OrgPlan) -> _Org:
    """The organisation's phases: its changes (phase 1), its deferred items per unblocker, its manual items."""
    w = WORDS[lang]
    notes = []
    if org.acting_admin:
        notes.append(_word(m, w["acting"], admin=m.value(org.acting_admin)))
    if org.over_threshold:
        notes.append(m.own(w["force"]))
    if not org.has_work:
        notes.append(m.own(w["nothing"]))
    number = 0
    done: list[tuple[int, set[str]]] = []            # earlier steps and what they act on
    phases: list[_Phase] = []

    def waits(item: Change | Deferred | Manual) -> list[str]:
        mine = _subjects(item)
        steps = [str(n) for n, theirs in done if mine & theirs]
        return [m.own(w["after_step"].format(steps=", ".join(steps)))] if steps else []

    def base(item: Change | Deferred | Manual) -> tuple[Template, str, str]:
        text = _step_text(m, lang, item)
        return TEMPLATES[item.action][lang], text.person, text.path

    if org.changes:
        steps = []
        for change in org.changes:
            number += 1
            template, person, path = base(change)
            facts = [m.own(w["section"].format(section=template.section)), _cost(m, lang, change), *waits(change)]
            steps.append(_Step(number, m.own(template.title), person, path, facts, change.id))
            done.append((number, _subjects(change)))
        phases.append(_Phase(m.own(w["phase1"]), steps))
    groups: dict[tuple[str, str], list[Deferred]] = {}
    for item in org.deferred:
        groups.setdefault((item.rule, item.reason), []).append(item)
    for (rule, reason), items in groups.items():
        steps = []
        for item in items:
            number += 1
            template, person, path = base(item)
            facts = [m.own(w["section"].format(section=template.section))]
            if item.rule in _ACTIVATION_RULES and item.person:
                facts.append(_word(m, w["after_activation"], person=m.value(item.person)))
            facts += waits(item)
            if item.detail and item.action not in PER_SERVICE:      # a grant's detail is its end date, shown
                facts.append(_word(m, w["see"], detail=m.value(item.detail)))
            if item.action in PER_SERVICE and item.detail.count(" until ") > 1:     # the UI takes one date a time
                facts.append(m.own(w["per_date"]))
            steps.append(_Step(number, m.own(template.title), person, path, facts, None))
            done.append((number, _subjects(item)))          # a later phase's step may wait for this one too
        said = m.own(_WAITS_NL[rule]) if lang == "nl" and rule in _WAITS_NL else m.value(reason)
        why = _word(m, w["waits_for"], reason=said, rule=m.value(rule))
        phases.append(_Phase(_word(m, w["phase"], n=m.own(str(len(phases) + 1 + (not org.changes))), why=why),
                             steps))
    if org.manual:
        steps = []
        for manual in org.manual:
            number += 1
            template, person, path = base(manual)
            acting = _who(manual)
            who = m.own(w["or"].join(w[key] for key in acting))
            facts = [_word(m, w["why"], reason=m.value(manual.reason), rule=m.value(manual.rule))]
            if manual.detail:
                facts.append(_word(m, w["see"], detail=m.value(manual.detail)))
            if {"beheerder", "someone"} & set(acting):     # a beheerder takes the same path in the UI
                facts.append(m.own(w["section"].format(section=template.section)))
            else:                          # not in the Beheermodule of a beheerder: the path would mislead
                path = _word(m, w["ask"], who=who)
            steps.append(_Step(number, m.own(template.title), person, path, facts, None, who=who, no_id="manual_id"))
        phases.append(_Phase(m.own(w["manual"]), steps))
    heading = _word(m, w["org"], kvk=m.value(org.kvk), name=m.value(org.name))
    return _Org(heading, notes, phases)


def _word(m: _Markup, text: str, **values: str) -> str:
    """One of WORDS with its (escaped) values: our text escaped for the format, the values as given."""
    return m.fill(text, values)


def _build(m: _Markup, lang: str, plan: Plan) -> tuple[str, str, list[_Org]]:
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}: use one of {', '.join(LANGUAGES)}")
    w = WORDS[lang]
    once = sum(c.cost_once for c in plan.changes)
    yearly = sum(c.cost_yearly for c in plan.changes)
    intro = m.own(w["intro"].format(today=plan.today.isoformat()) + " " +
                  w["total"].format(once=money(once), yearly=money(yearly)))
    return m.own(w["title"]), intro, [_organisation(m, lang, org) for org in plan.organisations]


# ---------------------------------------------------------------------------------------------- markdown
_DASH = "\u2014"
_DOT = " \u00b7 "


def render_runbook(plan: Plan, lang: str = "nl") -> str:
    """The plan as Markdown steps with task-list checkboxes, per organisation and phase (module docstring)."""
    title, intro, orgs = _build(_MD, lang, plan)
    w = WORDS[lang]
    lines = [f"# {title}", "", intro, ""]
    for org in orgs:
        lines += [f"## {org.heading}", ""]
        lines += [*(f"{note}" for note in org.notes), ""] if org.notes else []
        for phase in org.phases:
            lines += [f"### {phase.heading}", ""]
            for step in phase.steps:
                who = f"{step.who}: " if step.who else ""
                ident = f"<sub>({w['id']} {md(step.ident)})</sub>" if step.ident else f"<sub>({w[step.no_id]})</sub>"
                lines.append(f"- [ ] {step.number}. **{step.title}** {_DASH} {who}{step.person}")
                lines.append(f"  - {step.path}")
                lines.append(f"  - {_DOT.join(step.facts)} {ident}")
            lines.append("")
    lines += [w["verify"], ""]
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------------- html
_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #111; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.25rem; border-bottom: 1px solid #999; margin-top: 2rem; }
h3 { font-size: 1.05rem; margin-bottom: .3rem; }
ol.steps { list-style: none; padding-left: 0; }
ol.steps li { margin: .6rem 0; padding: .4rem .6rem; border-left: 3px solid #4a7; page-break-inside: avoid; }
ol.steps li.later { border-left-color: #48c; } ol.steps li.manual { border-left-color: #c74; }
.path { margin: .2rem 0 .2rem 1.6rem; } .facts { margin-left: 1.6rem; color: #444; font-size: .9rem; }
.id { font-family: ui-monospace, monospace; font-size: .8rem; color: #666; }
input[type=checkbox] { transform: scale(1.3); margin-right: .5rem; }
@media print { body { margin: 0; max-width: none; } input[type=checkbox] { transform: none; } }
"""


def render_runbook_html(plan: Plan, lang: str = "nl") -> str:
    """The runbook as one printable HTML page: self-contained (no script, no link to anything outside it); each
    step of phase 1 has the plan item id as its element id (`stap-<id>`)."""
    title, intro, orgs = _build(_HTML, lang, plan)
    w = WORDS[lang]
    out = ["<!DOCTYPE html>", f'<html lang="{lang}">', "<head>", '<meta charset="utf-8">',
           f"<title>{title}</title>", f"<style>{_STYLE}</style>", "</head>", "<body>",
           f"<h1>{title}</h1>", f"<p>{intro}</p>"]
    for org in orgs:
        out.append(f"<section><h2>{org.heading}</h2>")
        out += [f"<p>{note}</p>" for note in org.notes]
        for phase in org.phases:
            out += [f"<h3>{phase.heading}</h3>", '<ol class="steps">']
            for step in phase.steps:
                kind = "now" if step.ident else ("manual" if step.who else "later")
                anchor = f' id="stap-{html_text(step.ident)}"' if step.ident else ""
                who = f"{step.who}: " if step.who else ""
                ident = (f'<span class="id">({html.escape(w["id"])} {html_text(step.ident)})</span>' if step.ident
                         else f'<span class="id">({html.escape(w[step.no_id])})</span>')
                out.append(f'<li class="{kind}"{anchor}><label><input type="checkbox"> <b>{step.number}. '
                           f"{step.title}</b> {_DASH} {who}{step.person}</label>"
                           f'<div class="path">{step.path}</div>'
                           f'<div class="facts">{" &middot; ".join(step.facts)} {ident}</div></li>')
            out.append("</ol>")
        out.append("</section>")
    out += [f"<p>{_HTML.fill(w['verify'].replace('`', ''), {})}</p>", "</body>", "</html>", ""]
    return "\n".join(out)
