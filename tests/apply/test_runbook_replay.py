"""The runbook replay (issue 14, section 4): a runbook is complete and correctly ordered when carrying out its
steps, one by one and in its order, takes the Beheermodule to what the config declares.

No person clicks here: each runbook step names its plan item (`stap-id ...`), and the test makes exactly the API
request that item stands for (`reconciler.apply.calls.send`, the executor's one mapping) on an embedded sandbox,
acting as the organisation's admin. Phase by phase: the sandbox's downloads (`reconciler sandbox export`) are the
only view of the organisation the plan gets (`--backend export:DIR`), the runbook is rendered from that plan, its
steps are carried out, the supplier approves and the holders activate (`sandbox approve/activate --all`), the
downloads are taken again. A step the sandbox refuses means the runbook put it too early (or said it wrongly); a
plan that never runs dry means a step is missing. At the end `drift --backend export:DIR` exits 0, and the
sandbox's own API agrees (`plan --backend sandbox:PATH` exits 0): the downloads did not hide a difference."""

from __future__ import annotations

import datetime as dt
import json
import random
import re
import shutil
import sqlite3
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from click.testing import CliRunner, Result

from reconciler.apply.calls import path_kvk, send
from reconciler.backend.connect import open_backend
from reconciler.backend.errors import BackendError
from reconciler.cli.main import cli
from reconciler.domain.means import MeansType
from reconciler.pipeline import build_plan
from reconciler.plan.model import Change, Plan, target_list
from reconciler.render.runbook import TEMPLATES, render_runbook
from tests.apply.served import EXAMPLE, generated_config, write_config

#: The sandbox's today and the plan's (`--today`): the example's dates are ahead of it, and the generated
#: configurations are the same whatever day the tests run.
TODAY = dt.date(2026, 1, 15)
#: Rounds of (export, plan, carry out, approve, activate) before the plan through the downloads must be empty.
MAX_ROUNDS = 4
#: The plan item id a runbook step carries, in either language (a deferred step's "stap-id volgt ..." is no id).
STEP_ID = re.compile(r"\((?:stap-id|step id) ([0-9a-f]{8,})\)")


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@cache
def services() -> list[dict[str, Any]]:
    """The bundled catalogue as `catalogue list --format json` prints it (what the generator draws from)."""
    listed = run("catalogue", "list", "--format", "json")
    assert listed.exit_code == 0, listed.output
    return json.loads(listed.stdout)  # type: ignore[no-any-return]


def runbook_ids(markdown: str) -> list[str]:
    """The plan item ids of a runbook's steps, in the order a person meets them."""
    return STEP_ID.findall(markdown)


#: A step's title in the Dutch runbook -> its plan action.
TITLES = {TEMPLATES[action]["nl"].title: action.value for action in TEMPLATES}
_ORG = re.compile(r"## KvK (\d{8})\b")
_STEP = re.compile(r"- \[ \] (\d+)\. \*\*(.+?)\*\* \u2014 (.+)")
_MARK = re.compile(r"<sub>\((.+?)\)</sub>$")


@dataclass(frozen=True)
class Step:
    """One numbered step of a (Dutch) runbook as a person reads it."""

    kvk: str
    number: int
    action: str
    people: tuple[str, ...]
    ident: str | None                   # its plan item id; None for a later phase's step
    later: bool                         # "stap-id volgt ...": a later phase's step, made by a later plan


def runbook_steps(markdown: str) -> list[Step]:
    """The steps of a Markdown runbook, per organisation, with what each acts on and its id marker."""
    steps: list[Step] = []
    kvk = ""
    lines = markdown.splitlines()
    for n, line in enumerate(lines):
        if found := _ORG.match(line):
            kvk = found.group(1)
        elif found := _STEP.match(line):
            number, title, person = found.groups()
            [mark] = _MARK.findall(lines[n + 2])
            ident = STEP_ID.fullmatch(f"({mark})")
            people = tuple(re.sub(r"\\(.)", r"\1", p) for p in person.split(", "))
            steps.append(Step(kvk, int(number), TITLES[title], people, ident.group(1) if ident else None,
                              mark.startswith("stap-id volgt")))
    return steps


@dataclass
class Round:
    """One phase as carried out: the plan's change ids (= the runbook's step ids), and its deferred items."""

    steps: list[str]
    actions: list[str]
    deferred: set[tuple[str, str, str]]              # (kvk, action, person) of its later phases' items


@dataclass
class Replay:
    """An organisation (and the `others`, one config each) in its own embedded sandbox, each created with its
    config's first beheerder as its admin (as `sandbox init` would be run for it), and the loop that carries
    out their runbooks."""

    root: Path
    config: Path
    kvk: str = ""
    token: str = ""
    others: list[Path] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)       # kvk -> its admin's token
    rounds: list[Round] = field(default_factory=list)

    @property
    def paths(self) -> list[str]:
        return [str(p) for p in (self.config, *self.others)]

    @property
    def sandbox(self) -> str:
        return f"sandbox:{self.root / 'sb.db'}"

    @property
    def downloads(self) -> str:
        return f"export:{self.root / 'dl'}"

    def init(self) -> None:
        """`sandbox init` of each organisation with its config's first declared beheerder, at its level and with
        its second factor (R19), on the sandbox's clock set to TODAY."""
        clock = run("sandbox", "clock", "set", TODAY.isoformat(), "--backend", self.sandbox)
        assert clock.exit_code == 0, clock.output
        for path in self.paths:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
            kvk = str(data["organisation"]["kvk"])
            admin = next(u for u in data["users"] if u["role"] == "beheerder")
            factor = admin.get("second_factor") or {}
            extra = (["--second-factor", factor["type"]] + (["--phone", factor["phone"]] if "phone" in factor
                                                             else []) if factor else [])
            made = run("sandbox", "init", "--kvk", kvk, "--name", data["organisation"]["name"], "--admin",
                       admin["email"], "--level", admin["level"], *extra, "--backend", self.sandbox)
            assert made.exit_code == 0, made.output
            self.tokens[kvk] = made.stdout.strip()
            assert len(self.tokens[kvk]) >= 32, made.output
        self.kvk = next(iter(self.tokens))
        self.token = self.tokens[self.kvk]

    def export(self) -> None:
        """Each organisation's downloads, as its beheerder would fetch them now, under root/dl/KVK."""
        for kvk in self.tokens:
            target = self.root / "dl" / kvk
            if target.exists():
                shutil.rmtree(target)
            done = run("sandbox", "export", "--kvk", kvk, "--out", str(target), "--backend", self.sandbox)
            assert done.exit_code == 0, done.output

    def plan(self) -> Plan:
        made, _notes = anyio.run(build_plan, self.paths, self.downloads, TODAY)
        return made

    def runbook(self) -> str:
        shown = run("plan", *self.paths, "--backend", self.downloads, "--today", TODAY.isoformat(),
                    "--format", "runbook")
        assert shown.exit_code in (0, 2) and "Traceback" not in shown.output, shown.output
        return shown.stdout

    def carry_out(self, steps: list[Change]) -> None:
        """Each step as the one request its plan item stands for, in this order, by the admin of the organisation
        it is made in (a link: the one the means is already in, R15), with that organisation's current revision
        as If-Match (what the UI acts on). A refusal fails the test."""
        async def go() -> str | None:
            async with open_backend(self.sandbox, env={}) as raw:
                for number, change in enumerate(steps, 1):
                    client = raw.with_token(self.tokens[path_kvk(change)])
                    revision = (await client.get_organisation(path_kvk(change))).revision
                    try:
                        await send(client, change, if_match=revision, key=f"replay-{len(self.rounds)}-{change.id}")
                    except BackendError as error:
                        return (f"{self.config.name}, round {len(self.rounds) + 1}: runbook step {number} "
                                f"(stap-id {change.id}, {change.action.value} {change.target}) was refused: {error}"
                                f"\nparams: {change.params}\nthe steps: "
                                f"{[(c.id, c.action.value, c.target) for c in steps]}")
            return None
        refused = anyio.run(go)         # said here, not inside the backend's task group (it would wrap it)
        assert refused is None, refused

    def lifecycle(self) -> None:
        """The supplier approves what was requested; the holders activate what was approved."""
        for step in ("approve", "activate"):
            done = run("sandbox", step, "--all", "--backend", self.sandbox)
            assert done.exit_code == 0 and "Traceback" not in done.output, done.output

    def replay(self) -> Plan:
        """Export, plan through the downloads, check the runbook against the plan, carry it out, approve and
        activate; until the plan through the downloads has no changes. Returns that last plan."""
        previous: Round | None = None            # this replay's last round (the config may have changed since)
        for _ in range(MAX_ROUNDS):
            self.export()
            made = self.plan()
            changes = made.changes
            book = self.runbook()
            steps = runbook_steps(book)
            ids = runbook_ids(book)
            # complete and in order: the runbook's numbered steps are the plan's changes, each once, as planned
            assert ids == [c.id for c in changes], (ids, [(c.id, c.action.value, c.target) for c in changes])
            assert [(s.kvk, s.action, s.ident) for s in steps if s.ident] == [
                (c.kvk, c.action.value, c.id) for c in changes]
            for kvk in {s.kvk for s in steps}:                              # numbered 1, 2, ... per organisation
                assert [s.number for s in steps if s.kvk == kvk] == list(range(1, 1 + sum(s.kvk == kvk
                                                                                          for s in steps)))
            assert runbook_ids(render_runbook(made, "en")) == ids            # the English one says the same
            # what the runbook puts in later phases (read from the runbook, not the plan) is the plan's deferred
            assert all(s.ident or s.later for s in steps), steps            # no manual step: nobody else acts
            deferred = {(s.kvk, s.action, p) for s in steps if s.later for p in s.people}
            assert deferred == {(d.kvk, d.action.value, p) for org in made.organisations for d in org.deferred
                                for p in _people(d)}
            if previous:        # what the previous runbook put in a later phase is a step of this one (or of a
                wanted = previous.deferred              # later phase still, when it waits on one of this one)
                have = {(c.kvk, c.action.value, p) for c in changes for p in _people(c)}
                assert wanted <= have | deferred, {"announced, now gone": sorted(wanted - have - deferred)}
                # and nothing turns up now that the previous runbook did not announce: it was complete
                assert have <= wanted, {"planned now, not announced before": sorted(have - wanted)}
            manual = [m for org in made.organisations for m in org.manual]
            assert not manual, manual                      # nobody but the admin, supplier and holders acts here
            if not changes:
                assert not deferred, deferred              # nothing is waiting that no step will unblock
                return made
            previous = Round(ids, [c.action.value for c in changes], deferred)
            self.rounds.append(previous)
            self.carry_out(changes)
            self.lifecycle()
        raise AssertionError(f"{self.config.name}: the plan through the downloads still has changes after "
                             f"{MAX_ROUNDS} rounds: {[(c.action.value, c.target) for c in self.plan().changes]}")

    def assert_converged(self) -> None:
        """drift through fresh downloads exits 0, and the sandbox's own API sees no difference either."""
        self.export()
        drift = run("drift", *self.paths, "--backend", self.downloads, "--today", TODAY.isoformat())
        assert drift.exit_code == 0 and "in sync" in drift.stdout, drift.output
        truth = run("plan", *self.paths, "--backend", self.sandbox, "--today", TODAY.isoformat())
        assert truth.exit_code == 0, truth.output


def _people(item: Any) -> list[str]:
    """Who an item is about (its person, else its targets): how a deferred item is found among later changes."""
    return [item.person] if item.person else [t for t in target_list(item.target) if t]


def _means(replay: Replay) -> dict[str, Any]:
    """The first organisation's means as the sandbox's API lists them, by e-mail."""
    return {m.email: m for m in _means_in(replay, replay.kvk)}


def _means_in(replay: Replay, kvk: str) -> list[Any]:
    """An organisation's means as the sandbox's API lists them to its admin."""
    async def go() -> list[Any]:
        async with open_backend(replay.sandbox, token=replay.tokens[kvk], env={}) as client:
            return list(await client.list_all_means(kvk))
    return anyio.run(go)


@pytest.fixture
def example(tmp_path: Path) -> Replay:
    shutil.copy(EXAMPLE, tmp_path / "org.yaml")
    replay = Replay(tmp_path, tmp_path / "org.yaml")
    replay.init()
    return replay


# ------------------------------------------------------------------------------------------------ the example
def test_the_examples_runbooks_carried_out_step_by_step_reach_the_config(example: Replay) -> None:
    """examples/org.yaml from an organisation that holds only Johan: phase 1 requests the seven means, Johan's
    grant and the chain authorisation; after approval and activation phase 2 grants the seven their
    authorisations (the later phase the first runbook announced); then the downloads show no difference."""
    example.replay()
    assert [r.actions.count("request_means") for r in example.rounds] == [7, 0]
    assert example.rounds[0].actions.count("issue_chain") == 1
    assert set(example.rounds[1].actions) == {"grant"}
    assert len(example.rounds[0].deferred) == 7
    example.assert_converged()


def test_the_belastingdienst_means_type_unseen_in_the_downloads_does_not_break_the_replay(example: Replay) -> None:
    """The downloads do not show a means' type (a documented blind spot): the plan through them takes the
    config's type, so it neither stops at nor "fixes" the tax means; the sandbox does hold it as a
    belastingdienst means with its tax authorisation."""
    final = example.replay()
    assert all("change_type" not in r.actions for r in example.rounds), [r.actions for r in example.rounds]
    assert final.changes == []
    tax = _means(example)["belasting@ketelaarklip.nl"]
    assert tax.type is MeansType.BELASTINGDIENST, tax
    example.assert_converged()
    folder = example.root / "dl" / example.kvk
    users = (folder / "gebruikers.csv").read_text(encoding="utf-8-sig").splitlines()
    assert "type" not in [h.lower() for h in users[0].split(";")] and any("belasting@" in u for u in users[1:])
    granted = (folder / "machtigingen.csv").read_text(encoding="utf-8-sig").splitlines()
    assert any("belasting@ketelaarklip.nl" in row and "omzetbelasting" in row.lower() for row in granted), granted


# ---------------------------------------------------------------------------------- generated organisations
#: Dated ends are kept this far ahead: drift reports an end within `policy.renew_before_days` as expiring
#: (exit 3), which is right, but not what this test is about.
AHEAD = dt.timedelta(days=120)


def _ahead(config: dict[str, Any]) -> dict[str, Any]:
    """The config with every dated end at least AHEAD after TODAY."""
    dated = [a for u in config["users"] for a in u.get("authorisations") or []]
    dated += [a for g in (config.get("groups") or {}).values() for a in g.get("authorisations") or []]
    dated += list(config.get("chain_authorisations") or [])
    for entry in dated:
        if entry["until"] != "rolling" and entry["until"] < TODAY + AHEAD:
            entry["until"] = entry["until"] + AHEAD
    return config


def _generated(tmp_path: Path, n: int, rng: random.Random) -> Replay:
    kvk = f"{rng.randrange(10**7, 10**8)}"
    config = _ahead(generated_config(rng, kvk, rng.randrange(5, 12), services(), TODAY))
    root = tmp_path / f"gen{n}"
    root.mkdir()
    replay = Replay(root, write_config(root / "org.yaml", config))
    replay.init()
    return replay


def _fits(level: str) -> list[str]:
    """The catalogue's regular services a means at `level` may be authorised for."""
    order = ["EH1", "EH2", "EH2+", "EH3"]
    return sorted(s["key"] for s in services() if not s.get("belastingdienst") and s["level"] in order
                  and order.index(s["level"]) <= order.index(level))


def changed(config: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """The organisation declared anew, still valid: people gone and one new; roles both ways (an upgrade first
    where an admin needs EH2+, R2); levels raised (a factor added from EH2, kept from EH2+, R19); SMS numbers
    changed; the group joined or left; authorisations dropped, re-dated and added; the chain authorisation
    re-dated, or removed, or issued. A second factor's type is kept: changing it is the holder's (manual)."""
    new = yaml.safe_load(yaml.safe_dump(config))
    today = TODAY

    def until() -> Any:
        return "rolling" if rng.random() < 0.5 else today + dt.timedelta(days=rng.randrange(30, 4 * 365))

    kept: list[dict[str, Any]] = [new["users"][0]]
    for user in new["users"][1:]:
        if user.get("type") == "belastingdienst":
            kept.append(user)
            continue
        if rng.random() < 0.15:
            continue                                                      # gone: terminated (prune)
        if rng.random() < 0.3 and user["level"] != "EH3":                 # raised
            if user["level"] == "EH2":
                user["second_factor"] = rng.choice([{"type": "otp"}, {"type": "sms", "phone": "+31687654321"}])
            user["level"] = rng.choice(["EH2+", "EH3"] if user["level"] == "EH2" else ["EH3"])
        if rng.random() < 0.3:
            if user["role"] == "beheerder":
                user["role"] = "gebruiker"
            else:
                if user["level"] == "EH2":
                    user["level"], user["second_factor"] = "EH3", {"type": "otp"}
                user["role"] = "beheerder"
        factor = user.get("second_factor") or {}
        if factor.get("type") == "sms" and rng.random() < 0.3:
            factor["phone"] = f"+316{rng.randrange(10**7, 10**8)}"
        if rng.random() < 0.3:
            if user.get("groups"):
                del user["groups"]
            else:
                user["groups"] = ["team"]
        own = list(user.get("authorisations") or [])
        if own and rng.random() < 0.4:
            own.pop(rng.randrange(len(own)))
        for auth in own:
            if rng.random() < 0.3:
                auth["until"] = until()
        group = {a["service"] for a in new["groups"]["team"]["authorisations"]}
        free = [k for k in _fits(user["level"]) if k not in group and k not in {a["service"] for a in own}]
        if free and rng.random() < 0.4:
            own.append({"service": rng.choice(free), "until": until()})
        if own:
            user["authorisations"] = own
        else:
            user.pop("authorisations", None)
        kept.append(user)
    domain = new["users"][0]["email"].split("@")[1]
    kept.append({"email": f"new@{domain}", "name": "Nieuw", "role": "gebruiker", "level": "EH2",
                 "authorisations": [{"service": _fits("EH2")[0], "until": "rolling"}]})
    new["users"] = kept
    _ahead(new)
    for auth in new["groups"]["team"]["authorisations"]:
        if rng.random() < 0.3:
            auth["until"] = until()
    chains = new.get("chain_authorisations")
    pick = rng.random()
    if chains and pick < 0.35:
        del new["chain_authorisations"]
    elif chains and pick < 0.7:
        chains[0]["until"] = today + dt.timedelta(days=rng.randrange(60, 4 * 365))
    elif chains:                                 # another service for the intermediary, the old one ended
        chains[0]["services"] = [rng.choice([k for k in _fits("EH3") if k not in chains[0]["services"]])]
    else:
        new["chain_authorisations"] = [{"intermediary": {"kvk": "55555555", "name": "Accountants"},
                                        "services": [_fits("EH3")[0]], "until": today + dt.timedelta(days=400)}]
    return new


#: Seeds whose changed configs together need every action a config change can bring (below).
CHANGED_SEEDS = (20261209, 20261210, 20261217)
#: The actions the changed configs must have needed: all but change_type (the downloads do not show a type, a
#: documented blind spot), change_email and resend_invitation (about means waiting for activation).
COVERED = {"request_means", "grant", "set_end_date", "revoke", "change_role", "change_level", "change_phone",
           "terminate_means", "issue_chain", "set_chain_end_date", "revoke_chain", "remove_intermediary"}


def test_generated_organisations_replay_from_their_admin_and_to_a_changed_config(tmp_path: Path) -> None:
    """Seeded organisations (both roles, EH2/EH2+/EH3, SMS and OTP, a group, dated and rolling authorisations,
    a tax means, chain authorisations), each from its admin alone: the runbooks carried out step by step reach
    the config, drift exit 0. Then each is declared anew (`changed`): the runbooks carry the role and level
    changes, new numbers, grants, end dates, revocations, terminations and chain changes in an order the
    sandbox accepts, again to drift exit 0."""
    needed: set[str] = set()
    taxed = False
    for n, seed in enumerate(CHANGED_SEEDS):
        rng = random.Random(seed)
        replay = _generated(tmp_path, n, rng)
        replay.replay()
        assert len(replay.rounds) == 2 and "request_means" in replay.rounds[0].actions, replay.rounds
        replay.assert_converged()
        first = len(replay.rounds)
        before = yaml.safe_load(replay.config.read_text(encoding="utf-8"))
        taxed |= any(u.get("type") == "belastingdienst" for u in before["users"])
        write_config(replay.config, changed(before, rng))
        valid = run("validate", str(replay.config), "--today", TODAY.isoformat())
        assert valid.exit_code == 0, valid.output
        replay.replay()
        assert 1 <= len(replay.rounds) - first <= 3, replay.rounds[first:]
        replay.assert_converged()
        needed |= {a for r in replay.rounds[first:] for a in r.actions}
    assert taxed
    assert needed >= COVERED, sorted(COVERED - needed)


# ------------------------------------------------------------------------------------ the phases have teeth
def test_a_later_phases_step_carried_out_before_activation_is_refused(example: Replay, tmp_path: Path) -> None:
    """Why the replay proves the order: the sandbox refuses a step carried out too early. The example's phase 2
    grant to Marieke, sent on a copy of the sandbox taken after phase 1 and the supplier's approval but before
    she activated her means, is refused (R7: authorisations only to active users); the same request after the
    activation goes through."""
    example.export()
    first = example.plan()
    example.carry_out(first.changes)
    assert run("sandbox", "approve", "--all", "--backend", example.sandbox).exit_code == 0
    early = Replay(tmp_path / "early", example.config, example.kvk, example.token, tokens=dict(example.tokens))
    early.root.mkdir()
    with sqlite3.connect(example.root / "sb.db") as source, sqlite3.connect(early.root / "sb.db") as copy:
        source.backup(copy)
    assert run("sandbox", "activate", "--all", "--backend", example.sandbox).exit_code == 0
    example.export()
    [grant] = [c for c in example.plan().changes if "m.devries@ketelaarklip.nl" in _people(c)]
    assert grant.action.value == "grant"
    with pytest.raises(AssertionError, match=r"was refused: .*R7|was refused: .*activ"):
        early.carry_out([grant])
    example.carry_out([grant])


# ------------------------------------------------------------------------------ one person, two organisations
def test_a_person_in_two_organisations_is_requested_once_and_linked(tmp_path: Path) -> None:
    """Two generated organisations in one sandbox with one admin (a beheerder of both, as `sandbox init` links
    it), planned together from both downloads, with one more person declared in both (same e-mail): the
    runbooks request that means in one organisation and link it into the other, asked for in the organisation
    it is already in by an admin of both (R4, R15), after it exists; both reach their configs, and the person
    has the one means in both."""
    rng = random.Random(CHANGED_SEEDS[0])
    configs: list[Path] = []
    admin: dict[str, Any] = {}
    for n in range(2):
        kvk = f"{rng.randrange(10**7, 10**8)}"
        config = _ahead(generated_config(rng, kvk, 4, services(), TODAY, extras=False))
        admin = admin or config["users"][0]
        config["users"][0] = admin
        config["users"].append({"email": "gedeeld@voorbeeld.nl", "name": "Gedeeld", "role": "gebruiker",
                                "level": "EH3", "second_factor": {"type": "otp"},
                                "authorisations": [{"service": _fits("EH3")[n], "until": "rolling"}]})
        configs.append(write_config(tmp_path / f"org{n}.yaml", config))
    replay = Replay(tmp_path, configs[0], others=configs[1:])
    replay.init()
    replay.replay()
    actions = [a for r in replay.rounds for a in r.actions]
    assert actions.count("link_means") == 1 and actions.count("request_means") == 2 * 3 + 1, replay.rounds
    assert len(replay.rounds) == 3          # request; link (once approved) and grants; the grant after the link
    replay.assert_converged()
    shared = [m for kvk in replay.tokens for m in _means_in(replay, kvk) if m.email == "gedeeld@voorbeeld.nl"]
    assert len(shared) == 2 and len({m.id for m in shared}) == 1, shared
