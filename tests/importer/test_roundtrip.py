"""Import from the embedded sandbox, validate, plan: the file is valid and the plan has nothing to do, for
the example, for an organisation in every transient state the planner (and the people around it) can leave
behind, for two organisations sharing people, and for seeded generated organisations."""

from __future__ import annotations

import datetime as dt
import json
import random
import re
from pathlib import Path
from typing import Any

from reconciler.domain.catalogue import bundled_catalogue
from tests.apply.served import generated_config
from tests.importer.common import EXAMPLE, TODAY, Repo, invoke, load


def _users(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {u["email"].lower(): u for u in data["users"]}


def test_the_example_round_trips(tmp_path: Path) -> None:
    """examples/org.yaml applied, approved, activated and applied again: the import declares the same people
    with the same roles, levels, types and second factors, every authorisation with the end date the backend
    has (rolling ones at five years from today), the chain authorisation; validate 0, plan 0."""
    repo = Repo(tmp_path)
    repo.apply(EXAMPLE)
    repo.step("approve")
    repo.step("activate")
    repo.apply(EXAMPLE)
    path = repo.round_trip("99966564")
    text = path.read_text()
    data = load(path)
    example = load(EXAMPLE)
    assert data["organisation"] == example["organisation"]
    assert data["policy"] == {"prune": False}
    got, want = _users(data), _users(example)
    assert set(got) == set(want)
    for email, user in want.items():
        for field in ("name", "role", "level", "second_factor"):
            assert got[email].get(field) == user.get(field), (email, field)
        assert got[email].get("type", "regulier") == user.get("type", "regulier")
    # admins first, then by e-mail
    order = [u["email"] for u in data["users"]]
    assert order[:2] == ["j.bakker@ketelaarklip.nl", "m.devries@ketelaarklip.nl"]
    assert order[2:] == sorted(order[2:])
    five_years = (TODAY.replace(year=TODAY.year + 5)).isoformat()
    smit = {a["service"]: a["until"] for a in got["a.smit@ketelaarklip.nl"]["authorisations"]}
    assert smit == {"mijn-overheid/ondernemers": "2027-12-31", "uwv/werkgeversportaal": five_years}
    assert [a["service"] for a in got["s.yilmaz@ketelaarklip.nl"]["authorisations"]] == sorted(
        ["gemeente-baarn/zaaksysteem", "mijn-overheid/ondernemers", "rvo/tenderned"])
    assert data["chain_authorisations"] == [{
        "intermediary": {"kvk": "47474747", "name": "Accountants Vries"},
        "services": ["belastingdienst/aangifte-omzetbelasting", "uwv/werkgeversportaal"], "until": "2029-10-14"}]
    # the header: when (UTC), from where, for which KvK; never a token
    assert re.search(r"^# KvK 99966564: imported by `reconciler import` at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(UTC\)$",
                     text, re.MULTILINE)
    assert f"\n# from the beheer backend {repo.backend}\n# (its today {TODAY}, revision " in text
    assert "catalogue" not in data and not (path.parent / "99966564.catalogue.yaml").exists()
    # without --out the same YAML goes to stdout (but for the time stamp)
    printed = repo.import_("99966564")
    assert printed.code == 0
    assert printed.out.splitlines()[1:] == text.splitlines()[1:]


#: The acting admin is admin@; boss@ is a second beheerder. Everyone else ends up in another state.
ACME = "12345678"
OTHER = "87654321"


def _person(email: str, level: str, role: str = "gebruiker", **extra: Any) -> dict[str, Any]:
    user: dict[str, Any] = {"email": email, "name": email.split("@")[0].title(), "role": role, "level": level}
    if level in ("EH2+", "EH3"):
        user["second_factor"] = {"type": "otp"}
    user.update(extra)
    return user


def _acme(users: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"version": 1, "organisation": {"kvk": ACME, "name": "Acme B.V."}, "policy": {"prune": False},
            "users": users, **extra}


def test_every_transient_state_round_trips_and_stays_quiet_after_it_passes(tmp_path: Path) -> None:
    """Awaiting approval, awaiting activation (a gebruiker and a second beheerder), a lapsed activation, pending upgrades (from EH2+ and from EH2,
    where the factor chosen with it is not listed), a pending downgrade, a scheduled termination, a pending
    link to another organisation, a tax means, SMS phones, dated authorisations and a chain authorisation:
    validate 0, plan 0. Then the supplier and the holders do their part, and the plan is still quiet."""
    repo = Repo(tmp_path)
    sms = {"type": "sms", "phone": "+31611112222"}
    base = [
        _person("admin@acme.nl", "EH3", "beheerder"),
        _person("boss@acme.nl", "EH3", "beheerder", second_factor=sms),
        _person("active@acme.nl", "EH3", authorisations=[{"service": "uwv/werkgeversportaal", "until": "2027-05-01"}]),
        _person("wait-activate@acme.nl", "EH2+"),
        _person("lapsed@acme.nl", "EH3"),
        _person("up2plus@acme.nl", "EH2+", second_factor={"type": "sms", "phone": "+31633334444"}),
        _person("up2@acme.nl", "EH2", authorisations=[{"service": "rvo/tenderned", "until": "rolling"}]),
        _person("down@acme.nl", "EH3"),
        _person("leaving@acme.nl", "EH2"),
        _person("linked@acme.nl", "EH3"),
        _person("tax@acme.nl", "EH3", type="belastingdienst",
                authorisations=[{"service": "belastingdienst/aangifte-omzetbelasting", "until": "rolling"}]),
    ]
    chain = {"chain_authorisations": [{"intermediary": {"kvk": "47474747", "name": "Accountants Vries"},
                                       "services": ["algemene-bevoegdheid-3"], "until": "2028-02-29"}]}
    config = repo.write("acme.yaml", _acme(base, **chain))
    other = repo.write("other.yaml", {"version": 1, "organisation": {"kvk": OTHER, "name": "Other"},
                                      "users": [_person("admin@acme.nl", "EH3", "beheerder")]})
    repo.apply(config, other)
    repo.step("approve")
    repo.step("activate", *[u["email"] for u in base[2:] if u["email"] not in ("wait-activate@acme.nl",
                                                                                 "lapsed@acme.nl")])
    repo.apply(config)                                                    # the grants that waited (R7)
    repo.step("expire", "lapsed@acme.nl")
    # from here on the config leaves lapsed@ out (declared, apply would send a new invitation); new@ is
    # requested and stays awaiting approval
    changed = [dict(u) for u in base if u["email"] != "lapsed@acme.nl"] + [_person("new@acme.nl", "EH2")]
    by_email = {u["email"]: u for u in changed}
    by_email["up2plus@acme.nl"]["level"] = "EH3"                          # keeps its sms (R19)
    by_email["up2@acme.nl"].update(level="EH2+", second_factor={"type": "sms", "phone": "+31655556666"})
    by_email["down@acme.nl"]["level"] = "EH2+"
    other = repo.write("other.yaml", {"version": 1, "organisation": {"kvk": OTHER, "name": "Other"}, "users": [
        _person("admin@acme.nl", "EH3", "beheerder"), _person("linked@acme.nl", "EH3")]})   # a pending link
    repo.apply(repo.write("acme.yaml", _acme(changed, **chain)), other)
    leaving = repo.means_id(ACME, "leaving@acme.nl")
    repo.act(ACME, lambda client: client.terminate_means(ACME, leaving, mode="date", date=dt.date(2026, 3, 1)))

    path = repo.round_trip(ACME)
    text = path.read_text()
    users = _users(load(path))
    assert set(users) == {u["email"] for u in changed}
    assert users["leaving@acme.nl"]["until"] == "2026-03-01"              # the scheduled end, as the person's until
    assert "# Transient: requested, it awaits the supplier's approval" in text
    assert "# Transient: approved, it awaits activation by the holder by 2026-02-14 (R5)." in text
    assert re.search(r"# Left out: lapsed@acme\.nl \(gebruiker, EH3\)\. Its activation lapsed on 2026-02-14", text)
    assert "#   name: Lapsed\n" in text                                     # commented out, ready to uncomment
    assert "# Its end on 2026-03-01 is scheduled in the backend (R14): declared as the person's until" in text
    assert "level change EH2+ -> EH3 awaits the supplier (R6)" in text and users["up2plus@acme.nl"]["level"] == "EH3"
    assert users["up2plus@acme.nl"]["second_factor"] == {"type": "sms", "phone": "+31633334444"}
    assert users["up2@acme.nl"]["level"] == "EH2+" and users["up2@acme.nl"]["second_factor"] == {"type": "otp"}
    assert "`otp` is a placeholder: check it" in text
    assert users["down@acme.nl"]["level"] == "EH2+" and "level change EH3 -> EH2+" in text
    assert f"a link of this means to organisation {OTHER} as gebruiker awaits the supplier (R15)" in text
    assert users["tax@acme.nl"]["type"] == "belastingdienst"
    assert users["boss@acme.nl"]["second_factor"] == sms
    assert users["up2@acme.nl"]["authorisations"][0]["service"] == "rvo/tenderned"
    assert load(path)["chain_authorisations"][0]["until"] == "2028-02-29"

    # the supplier processes everything, the holders activate: the imported file needs no change made; the
    # placeholder factor, where it differs from the one chosen, is a difference only a person settles (a manual
    # item, never a change), so plan exits 2 until the file says what the backend has (issue #13)
    repo.step("approve")
    repo.step("activate")
    plan = repo.run("plan", str(path), "--format", "json")
    assert plan.code == 2, str(plan)
    [org] = json.loads(plan.out)["organisations"]
    assert org["changes"] == [] and org["deferred"] == []
    assert [(m["action"], m["target"], m["rule"]) for m in org["manual"]] == [("change_phone", "up2@acme.nl", "R19")]
    # and, the other way round, with prune only the left-out means would go: the file declares all the rest
    pruned = repo.write("pruned.yaml", text.replace("prune: false", "prune: true"))
    plan = repo.run("plan", str(pruned), "--format", "json")
    assert plan.code == 2, str(plan)
    [org] = json.loads(plan.out)["organisations"]
    assert sorted((c["action"], c["target"]) for c in org["changes"]) == [("terminate_means", "lapsed@acme.nl")]


def test_two_organisations_sharing_people_import_consistently(tmp_path: Path) -> None:
    """Two organisations with the same acting admin and people linked to both (R15): each imported into one
    directory, the two files validate together (a linked means has one level, type, name, second factor and
    subscription in every file) and plan 0 together; the role stays per organisation."""
    repo = Repo(tmp_path)
    shared = _person("shared@acme.nl", "EH3", second_factor={"type": "sms", "phone": "+31677778888"},
                     authorisations=[{"service": "rvo/tenderned", "until": "2027-01-31"}])
    acme = repo.write("acme.yaml", _acme([_person("admin@acme.nl", "EH3", "beheerder"), shared,
                                          _person("only-acme@acme.nl", "EH2")]))
    other = repo.write("other.yaml", {"version": 1, "organisation": {"kvk": OTHER, "name": "Other B.V."}, "users": [
        _person("admin@acme.nl", "EH3", "beheerder"), {**shared, "role": "beheerder", "authorisations": []}]})
    for _ in range(2):
        repo.apply(acme, other)
        repo.step("approve")
        repo.step("activate")
    assert repo.run("plan", str(acme), str(other)).code == 0
    out = tmp_path / "orgs"
    for kvk in (ACME, OTHER):
        repo.round_trip(kvk, out)
    valid = invoke("validate", str(out), "--today", TODAY.isoformat())
    assert valid.code == 0 and "in 2 files" in valid.out, str(valid)
    plan = repo.run("plan", str(out))
    assert plan.code == 0, str(plan)
    a, b = (_users(load(out / f"{k}.yaml")) for k in (ACME, OTHER))
    assert set(a) & set(b) == {"admin@acme.nl", "shared@acme.nl"}
    assert (a["shared@acme.nl"]["role"], b["shared@acme.nl"]["role"]) == ("gebruiker", "beheerder")
    for field in ("name", "level", "second_factor", "subscription"):
        assert a["shared@acme.nl"][field] == b["shared@acme.nl"][field], field
    assert a["shared@acme.nl"]["authorisations"] == [{"service": "rvo/tenderned", "until": "2027-01-31"}]
    assert "authorisations" not in b["shared@acme.nl"]


GENERATED_SEED = 20261122


def test_generated_organisations_in_mixed_states_round_trip(tmp_path: Path) -> None:
    """Seeded organisations (both roles, EH2..EH3, SMS and OTP, groups, dated and rolling authorisations, tax
    means, chain authorisations) left half-way: some means not approved, some not activated, one lapsed, some
    level changes pending. Each imports, validates and plans with nothing to do."""
    repo = Repo(tmp_path)
    rng = random.Random(GENERATED_SEED)
    services = [s.to_data() for s in bundled_catalogue()]
    seen: dict[str, int] = {}
    for n in range(4):
        kvk = str(rng.randrange(10**7, 10**8))
        config = generated_config(rng, kvk, rng.randrange(6, 13), services, TODAY)
        path = repo.write(f"gen{n}.yaml", config)
        repo.apply(path)
        emails = [u["email"] for u in config["users"][1:]]
        approved = [e for e in emails if rng.random() < 0.8]
        activated = [e for e in approved if rng.random() < 0.75]
        if approved:
            repo.step("approve", *approved)
        if activated:
            repo.step("activate", *activated)
        repo.apply(path)                                       # grants for the active ones (R7)
        for user in config["users"][1:]:                       # level changes, pending with the supplier
            if user["email"] in activated and user["role"] == "gebruiker" and user["level"] != "EH3" \
                    and user.get("type") != "belastingdienst" and rng.random() < 0.5:
                if user["level"] == "EH2":
                    user["level"] = "EH2+"
                    user["second_factor"] = {"type": "sms", "phone": f"+316{rng.randrange(10**7, 10**8)}"}
                else:
                    user["level"] = "EH3"
        repo.apply(repo.write(f"gen{n}.yaml", config))
        waiting = [e for e in approved if e not in activated]
        if waiting and rng.random() < 0.7:                     # and an activation lapses
            repo.step("expire", waiting[0])
        imported = repo.round_trip(kvk)
        text = imported.read_text()
        for feature, marker in {"awaiting approval": "awaits the supplier's approval",
                                "awaiting activation": "awaits activation by the holder",
                                "lapsed": "Its activation lapsed", "pending level": "level change",
                                "tax means": "type: belastingdienst", "chain": "chain_authorisations:",
                                "sms": "phone: \"+316"}.items():
            seen[feature] = seen.get(feature, 0) + (marker in text)
        assert load(imported)["organisation"]["kvk"] == kvk
    assert all(seen.values()), seen          # every state occurred in at least one organisation


PARKING = "9d0f6a3e-1c2b-4d5e-8f90-123456789abc"


def test_services_outside_the_bundled_catalogue_get_a_catalogue_file(tmp_path: Path) -> None:
    """A service the sandbox knows from a config's own catalogue: with --out it is written to K.catalogue.yaml
    next to the organisation file (which names it), and both validate and plan 0; on stdout, where no second
    file can go, the authorisation and the chain authorisation naming it are left out with a comment (and a
    warning), and the file still validates and plans without changes."""
    repo = Repo(tmp_path)
    repo.write("own.yaml", "services:\n  - {key: gemeente-utrecht/parkeren, uuid: " + PARKING + ",\n"
               "     provider: Gemeente Utrecht, name: Parkeervergunning, level: EH2}\n")
    users = [_person("admin@acme.nl", "EH3", "beheerder", authorisations=[
        {"service": "gemeente-utrecht/parkeren", "until": "2027-08-31"},
        {"service": "rvo/tenderned", "until": "2027-08-31"}])]
    chain = [{"intermediary": {"kvk": "47474747"}, "services": ["gemeente-utrecht/parkeren", "rvo/tenderned"],
              "until": "2028-01-31"}]
    repo.apply(repo.write("acme.yaml", _acme(users, catalogue="own.yaml", chain_authorisations=chain)))
    path = repo.round_trip(ACME)
    catalogue = path.parent / f"{ACME}.catalogue.yaml"
    data = load(path)
    assert data["catalogue"] == catalogue.name
    assert load(catalogue)["services"] == [{"key": "gemeente-utrecht/parkeren", "uuid": PARKING,
                                            "provider": "Gemeente Utrecht", "name": "Parkeervergunning",
                                            "level": "EH2"}]
    assert data["users"][0]["authorisations"] == [{"service": "gemeente-utrecht/parkeren", "until": "2027-08-31"},
                                                  {"service": "rvo/tenderned", "until": "2027-08-31"}]
    assert data["chain_authorisations"][0]["services"] == ["gemeente-utrecht/parkeren", "rvo/tenderned"]
    valid = invoke("validate", str(path.parent), "--today", TODAY.isoformat())  # the directory: org + catalogue
    assert valid.code == 0 and "0 errors, 0 warnings in 2 files" in valid.out, str(valid)
    assert repo.run("plan", str(path.parent)).code == 0

    printed = repo.import_(ACME)
    assert printed.code == 0 and "warning: some authorisations name services the bundled catalogue does not" \
        in printed.err, str(printed)
    assert "gemeente-utrecht/parkeren (9d0f6a3e-1c2b-4d5e-8f90-123456789abc) is not in the bundled catalogue; " \
           "import with --out DIR" in " ".join(printed.out.replace("#", "").split())
    alone = repo.write("stdout.yaml", printed.out)
    data = load(alone)
    assert "catalogue" not in data and "chain_authorisations" not in data
    assert data["users"][0]["authorisations"] == [{"service": "rvo/tenderned", "until": "2027-08-31"}]
    assert invoke("validate", str(alone), "--today", TODAY.isoformat()).code == 0
    plan = repo.run("plan", str(alone), "--format", "json")
    assert plan.code == 0, str(plan)
    [org] = json.loads(plan.out)["organisations"]
    assert org["changes"] == org["deferred"] == org["manual"] == []
    assert sorted(u["target"] for u in org["unmanaged"]) == ["47474747", f"admin@acme.nl {PARKING}"]
