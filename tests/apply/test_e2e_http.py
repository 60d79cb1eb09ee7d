"""`reconciler apply` end to end over HTTP: a real `reconciler sandbox serve` subprocess, the CLI as
subprocesses with `--backend http://127.0.0.1:PORT` and `BEHEER_API_TOKEN`, no mocks.

The loop every test relies on: apply, the supplier approves, the holders activate, until `plan` says the
backend matches the config (exit 0). It must converge for the example and for generated organisations, under
injected faults (503, 429, commit-then-drop), after applies killed mid-way, and with two applies racing on one
organisation; a saved plan is refused once the backend moved on. Afterwards the backend holds exactly what
the config declares and every means was bought exactly once (the sandbox's own audit trail says so)."""

from __future__ import annotations

import datetime as dt
import json
import random
import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from tests.apply.served import (
    EXAMPLE, Cli, Result, Sandbox, assert_backend_matches, assert_each_bought_once, audit_records,
    catalogue, converge, expected_state, finish, generated_config, many_users_config, request_means_events,
    run_cli, served_sandbox, write_config,
)


#: The sandbox's today in every test (plan and apply take today from the backend): the example's dates are
#: all ahead of it, and the generated configurations are the same whatever day the tests run.
TODAY = dt.date(2026, 1, 15)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    with served_sandbox(tmp_path) as served:
        served.set_today(TODAY)
        yield served


@pytest.fixture
def cli(sandbox: Sandbox, tmp_path: Path) -> Cli:
    return Cli(sandbox, tmp_path)


def _first_beheerder(config: Path) -> dict[str, str]:
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    return next(u for u in data["users"] if u["role"] == "beheerder")


def _init_from(cli: Cli, config: Path) -> tuple[str, str]:
    """`sandbox init` the config's organisation with its first declared beheerder (at that level) as admin."""
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    kvk, name = str(data["organisation"]["kvk"]), data["organisation"]["name"]
    admin = _first_beheerder(config)
    cli.init(kvk, name, admin["email"], admin["level"], admin.get("second_factor"))   # as declared (R19)
    return kvk, admin["email"]


def _final_checks(cli: Cli, config: Path, kvk: str, admin: str, *, again: bool = True) -> None:
    """Converged means: (with `again`) one more apply has nothing left and one more plan exits 0; the backend
    holds exactly what the config declares, and each means was bought once."""
    if again:
        nothing = cli.apply(config, kvk)
        assert nothing.code == 0 and "Nothing to apply" in nothing.out, str(nothing)
        final = cli.plan(config, kvk)
        assert final.code == 0, str(final)
    expected = expected_state(config, cli.sandbox.today())
    assert_backend_matches(cli.sandbox, expected)
    assert_each_bought_once(cli.sandbox, expected, admin)


# ---------------------------------------------------------------------------------------- 1. the example
def test_the_example_converges_over_http(cli: Cli) -> None:
    """examples/org.yaml, its organisation created with its first beheerder (Johan, EH3) as the admin: two
    rounds of apply / approve / activate reach `plan` exit 0; then apply has nothing left, and the backend
    holds exactly the declared people, roles, levels, types, authorisations and chain authorisations."""
    kvk, admin = _init_from(cli, EXAMPLE)
    rounds = converge(cli, EXAMPLE, kvk, max_rounds=4)
    assert all(r.code == 0 for r in rounds.applies), [str(r) for r in rounds.applies]
    first = rounds.applies[0]                 # 7 new means, Johan's grant, the chain authorisation
    assert "Apply: 9 done, 0 failed, 0 skipped; not attempted: 7 deferred" in first.out, str(first)
    # the grants wait for activation (R7): the first round cannot do it all, the second can
    assert [p.code for p in rounds.plans] == [2, 0], [str(p) for p in rounds.plans]
    assert "(deferred" not in rounds.plans[-1].out
    _final_checks(cli, EXAMPLE, kvk, admin)


# ------------------------------------------------------------------------------ 2. generated organisations
GENERATED_SEED = 20250601


def test_generated_organisations_converge_over_http(cli: Cli, tmp_path: Path) -> None:
    """Three seeded organisations (5-15 people, both roles, EH2/EH2+/EH3, SMS and OTP, a group, dated and
    rolling authorisations from the bundled catalogue, a tax means, a chain authorisation), valid for
    `reconciler validate`, converge side by side on one server within four rounds."""
    services = catalogue()
    rng = random.Random(GENERATED_SEED)
    configs: list[Path] = []
    for n in range(3):
        kvk = f"{rng.randrange(10**7, 10**8)}"
        config = generated_config(rng, kvk, rng.randrange(5, 16), services, TODAY)
        configs.append(write_config(tmp_path / f"gen{n}.yaml", config))
    kinds = [expected_state(c, TODAY) for c in configs]
    assert len({k.kvk for k in kinds}) == 3
    # a real mix in every organisation: both roles, several levels, authorisations (own and the group's)
    for k in kinds:
        assert 5 <= len(k.users) <= 16 and len(k.authorisations) >= len(k.users)
        assert {u["role"] for u in k.users.values()} == {"beheerder", "gebruiker"}
        assert len({u["level"] for u in k.users.values()}) >= 2
    assert {u["level"] for k in kinds for u in k.users.values()} == {"EH2", "EH2+", "EH3"}
    assert any(u["type"] == "belastingdienst" for k in kinds for u in k.users.values())
    assert any(k.chains for k in kinds)
    valid = run_cli("validate", *map(str, configs), "--today", TODAY.isoformat(), cwd=tmp_path)
    assert valid.code == 0 and "0 errors" in valid.text, str(valid)

    with ThreadPoolExecutor(max_workers=3) as pool:       # independent organisations on one server
        inits = list(pool.map(lambda c: _init_from(cli, c), configs))
        kvks = [kvk for kvk, _ in inits]
        # the loop, for the three at once: each applies as its own admin; the supplier approves and the holders
        # activate everything there is (one `--all` for all three); each plans
        pending = list(range(3))
        for _round in range(4):
            applies = list(pool.map(lambda i: cli.apply(configs[i], kvks[i]), pending))
            for r in applies:
                assert r.code == 0 and "Traceback" not in r.text, str(r)
            for step in ("approve", "activate"):
                r = cli.run("sandbox", step, "--all")
                assert r.code == 0 and "Traceback" not in r.text, str(r)
            plans = list(pool.map(lambda i: cli.plan(configs[i], kvks[i]), pending))
            for r in plans:
                assert r.code in (0, 2) and "Traceback" not in r.text, str(r)
            pending = [i for i, r in zip(pending, plans) if r.code != 0]
            if not pending:
                break
        assert not pending, f"not converged within 4 rounds: {[kvks[i] for i in pending]}"
        list(pool.map(lambda i: _final_checks(cli, configs[i], *inits[i]), range(3)))


# -------------------------------------------------------------------------------------- 3. a stale plan
def _snapshot(sandbox: Sandbox, kvk: str) -> tuple[object, ...]:
    return sandbox.means(kvk), sandbox.revision(kvk), len(sandbox.events(kvk)), sandbox.authorisations(kvk)


def test_a_saved_plan_is_refused_once_the_backend_changed(cli: Cli, tmp_path: Path) -> None:
    """`plan --out p.json`, then the supplier approves means (the revision moves): `apply --plan p.json`
    exits 1, says the plan is stale and to plan again, and sends nothing; a fresh saved plan goes through."""
    kvk = "31415926"
    first = write_config(tmp_path / "first.yaml", many_users_config(kvk, 4))
    cli.init(kvk, "Stale", "admin@org31415926.nl")
    token = cli.sandbox.tokens[kvk]
    done = cli.apply(first, kvk)
    assert done.code == 0 and "Apply: 3 done, 0 failed" in done.out, str(done)
    more = write_config(tmp_path / "more.yaml", many_users_config(kvk, 7))
    saved = tmp_path / "p.json"
    planned = cli.plan(more, kvk, "--out", str(saved))
    assert planned.code == 2 and saved.exists(), str(planned)
    assert [c["action"] for c in json.loads(saved.read_text())["organisations"][0]["changes"]] == ["request_means"] * 3

    # the backend moves on: the supplier approves the first three means
    approved = cli.lifecycle("approve", kvk)
    assert approved.out.count("approved ") == 3, str(approved)
    before = _snapshot(cli.sandbox, kvk)
    refused = cli.run("apply", "--plan", str(saved), str(more), "--auto-approve",
                      "--audit-log", str(tmp_path / "a.jsonl"),
                      token=token)
    assert refused.code == 1 and "Traceback" not in refused.text, str(refused)
    assert "stale" in refused.err and "Plan again" in refused.err, str(refused)
    assert f"organisation {kvk} changed since the plan was made" in refused.err, str(refused)
    assert _snapshot(cli.sandbox, kvk) == before                 # nothing sent: no means, no event, same revision
    assert {m["email"] for m in cli.sandbox.means(kvk)} == {f"admin@org{kvk}.nl"} | {
        f"user{i:02d}@org{kvk}.nl" for i in range(1, 4)}

    # the same steps, planned again on the current backend, do go through
    planned = cli.plan(more, kvk, "--out", str(saved))
    assert planned.code == 2, str(planned)
    again = cli.run("apply", "--plan", str(saved), str(more), "--auto-approve", "-q",
                    "--audit-log", str(tmp_path / "a.jsonl"),
                    token=token)
    assert again.code == 0 and "Apply: 3 done, 0 failed" in again.out, str(again)
    assert len(cli.sandbox.means(kvk)) == 7


# ------------------------------------------------------------------------------- 4. two applies at once
def _report(r: Result) -> dict[str, Any]:
    """The JSON report of an apply run with --format json (also when it failed)."""
    assert "Traceback" not in r.text, str(r)
    data = json.loads(r.out)
    assert isinstance(data, dict) and "summary" in data, str(r)
    return data


def test_two_applies_at_once_buy_each_means_once(cli: Cli, tmp_path: Path) -> None:
    """Two applies started together on one config with 29 request_means steps: each ends done (itself or by
    the backend's replay of the other's identical request), stopped cleanly on a 412, or with nothing to do;
    every means was requested exactly once, and a further apply and plan find nothing left."""
    kvk, n = "27182818", 30
    config = write_config(tmp_path / "org.yaml", many_users_config(kvk, n, grants=False))
    cli.init(kvk, "Race", f"admin@org{kvk}.nl")
    procs = [cli.start_apply(config, kvk, "--format", "json") for _ in range(2)]
    results = [finish(proc, args) for proc, args in procs]
    reports = [_report(r) for r in results]

    own: list[set[str]] = []               # the people each apply requested a means for itself (not a replay)
    for r, data in zip(results, reports):
        steps = [s for o in data["organisations"] for s in o["steps"]]
        failed = [s for s in steps if s["outcome"] != "done"]
        if r.code == 0:
            assert data["ok"] and not failed, str(r)
        else:
            # it stopped cleanly on the other's change (412) and did nothing after that
            assert r.code == 1 and not data["ok"], str(r)
            assert failed and failed[0]["outcome"] == "failed" and failed[0]["code"] == "precondition-failed", str(r)
            assert all(s["outcome"] == "skipped" for s in failed[1:]), str(r)
            assert [s["outcome"] for s in steps] == ["done"] * (len(steps) - len(failed)) + [f["outcome"]
                                                                                                for f in failed]
            assert any("changed the organisation since" in (o["stopped"] or "") for o in data["organisations"])
        own.append({s["target"] for s in steps if s["outcome"] == "done" and not s["replayed"]})
    # each means was requested by exactly one of them; a step the other had already sent with the same
    # Idempotency-Key (both planned the same plan) is answered by the backend's replay, not sent again
    assert not own[0] & own[1] and own[0] | own[1] == {f"user{i:02d}@org{kvk}.nl" for i in range(1, n)}, \
        [str(r) for r in results]

    means = cli.sandbox.means(kvk)
    emails = Counter(m["email"] for m in means)
    assert set(emails) == {f"admin@org{kvk}.nl"} | {f"user{i:02d}@org{kvk}.nl" for i in range(1, n)}
    assert set(emails.values()) == {1}
    ok = Counter(e["target"] for e in request_means_events(cli.sandbox, kvk) if e["outcome"] == "ok")
    assert set(ok.values()) == {1} and len(ok) == n - 1

    # a further apply finds nothing left, and the plan says the backend matches the config
    further = cli.apply(config, kvk)
    assert further.code == 0 and "Nothing to apply" in further.out, str(further)
    plan = cli.plan(config, kvk)
    assert plan.code == 0, str(plan)
    assert len(request_means_events(cli.sandbox, kvk)) == len(ok) + sum(r.code for r in results)  # + the 412s


# ------------------------------------------------------------------------------------- 5. faults campaign
FAULTS = {"p_503": 0.07, "p_429": 0.07, "p_drop": 0.06, "delay_ms": 0, "seed": 424242}


def test_a_fault_campaign_converges_and_buys_each_means_once(cli: Cli, tmp_path: Path) -> None:
    """20% of /v1 requests fail (503, 429, or committed and then the connection dropped): each apply exits 0
    or 1 with a clean report, re-runs converge, and each declared person got exactly one means."""
    config_data = generated_config(random.Random(7), "16180339", 12, catalogue(), TODAY)
    config = write_config(tmp_path / "org.yaml", config_data)
    kvk, admin = _init_from(cli, config)
    cli.sandbox.faults(**FAULTS)                  # on /v1 only: approve and activate (/sandbox) are not faulted
    try:
        rounds = converge(cli, config, kvk, max_rounds=5, allow_failed_apply=True, max_applies_per_round=3)
    finally:
        cli.sandbox.faults()
    for r in rounds.applies:
        assert r.code == 0 or (r.code == 1 and "Traceback" not in r.err), str(r)
    # the campaign did hit the apply: requests were retried, and a change committed before its connection
    # dropped was answered from the backend's idempotency record when retried (not made twice)
    steps = [s for s in audit_records(cli.audit_log(kvk)) if s["event"] == "step-result"]
    assert any(s["attempts"] > 1 for s in steps), steps
    assert any(s["replayed"] for s in steps if s["outcome"] == "done"), \
        f"under seed {FAULTS['seed']} no change was committed and then dropped: choose another seed\n{steps}"
    _final_checks(cli, config, kvk, admin, again=False)


# ------------------------------------------------------------------------------------------ 6. kill loop
def _steps_logged(path: Path) -> int:
    """Steps answered so far, read while the apply writes the log."""
    return sum(1 for r in audit_records(path, being_written=True) if r["event"] == "step-result")


KILL_DELAY_MS = 20


def _settled_count(cli: Cli, kvk: str) -> int:
    """The number of means once a request the killed apply had in flight has been committed or dropped by the
    server (it may still be in the server's hands when the client dies; counted too early, the test races it)."""
    last, same = -1, 0
    while same < 3:
        time.sleep(KILL_DELAY_MS * 3 / 1000)
        count = len(cli.sandbox.means(kvk))
        same = same + 1 if count == last else 0
        last = count
    return last


def test_applies_killed_midway_converge_without_duplicates(cli: Cli, tmp_path: Path) -> None:
    """An apply of 39 new means is SIGKILLed four times at seeded moments while it sends its steps; a fifth
    run does exactly the rest, the loop converges, and nobody got a second means."""
    kvk, n = "14142135", 40
    config = write_config(tmp_path / "org.yaml", many_users_config(kvk, n))
    cli.init(kvk, "Kill", f"admin@org{kvk}.nl")
    log = cli.audit_log(kvk)
    rng = random.Random(20250606)
    held = [1]
    # ~20 ms a request, so that a kill lands while the apply is busy, on any machine
    cli.sandbox.faults(delay_ms=KILL_DELAY_MS, seed=1)
    for _ in range(4):
        before = _steps_logged(log)
        proc, args = cli.start_apply(config, kvk)
        # SIGKILL it at a random moment once it has sent a few of its steps (a step is logged when answered)
        wanted = before + rng.randint(1, 5)
        deadline = time.monotonic() + 60
        while _steps_logged(log) < wanted and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.05))
        proc.send_signal(signal.SIGKILL)
        r = finish(proc, args)
        assert r.code == -signal.SIGKILL, f"the apply was not killed mid-way:\n{r}"
        held.append(_settled_count(cli, kvk))
        assert held[-2] < held[-1] < n, held               # it had made progress, and was not finished
    cli.sandbox.faults()
    records = audit_records(log)
    assert [r["event"] for r in records].count("apply-started") == 4
    assert [r["event"] for r in records].count("apply-finished") == 0   # each one died mid-way

    rest = cli.apply(config, kvk)
    assert rest.code == 0 and f"Apply: {n - held[-1]} done, 0 failed" in rest.out, str(rest)
    assert len(cli.sandbox.means(kvk)) == n
    rounds = converge(cli, config, kvk, max_rounds=3)
    assert all(r.code == 0 for r in rounds.applies), [str(r) for r in rounds.applies]
    _final_checks(cli, config, kvk, f"admin@org{kvk}.nl", again=False)


# ----------------------------------------------------------------------- 7. the backend's today decides R9
def _plus_years(day: dt.date, years: int) -> dt.date:
    return day.replace(year=day.year + years) if (day.month, day.day) != (2, 29) else dt.date(day.year + years, 3, 1)


def test_apply_judges_end_dates_on_the_backends_today(cli: Cli, tmp_path: Path) -> None:
    """plan and apply take today from the backend (INTERFACE.md): an end date within five years of the
    backend's today is valid there, even when it is more than five years after the machine's date."""
    later = dt.date.today() + dt.timedelta(days=800)
    cli.sandbox.set_today(later)
    until = _plus_years(later, 5) - dt.timedelta(days=30)        # allowed on `later`, too far on the machine's today
    assert until > _plus_years(dt.date.today(), 5)
    kvk = "11235813"
    config = many_users_config(kvk, 2, grants=False)
    config["users"][1]["authorisations"] = [{"service": "rvo/tenderned", "until": until}]
    path = write_config(tmp_path / "org.yaml", config)
    valid = run_cli("validate", str(path), "--today", later.isoformat(), cwd=tmp_path)
    assert valid.code == 0, str(valid)
    cli.init(kvk, "Later", f"admin@org{kvk}.nl")
    first = cli.apply(path, kvk)
    assert first.code == 0 and "Apply: 1 done, 0 failed" in first.out, str(first)
    cli.lifecycle("approve", kvk)
    cli.lifecycle("activate", kvk)
    second = cli.apply(path, kvk)
    assert second.code == 0 and "Apply: 1 done, 0 failed" in second.out, str(second)
    [held] = cli.sandbox.authorisations(kvk)
    assert (held["email"], held["service_key"], held["end_date"]) == (f"user01@org{kvk}.nl", "rvo/tenderned",
                                                                     until.isoformat())
