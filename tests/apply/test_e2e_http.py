"""`reconciler apply` end to end over HTTP: a real `reconciler sandbox serve` subprocess, the CLI as
subprocesses with `--backend http://127.0.0.1:PORT` and `BEHEER_API_TOKEN`, no mocks.

The loop every test relies on: apply, the supplier approves, the holders activate, until `plan` says the
backend matches the config (exit 0). It must converge for the example and for generated organisations, under
injected faults (503, 429, commit-then-drop), after applies killed mid-way, and with two applies racing on one
organisation; a saved plan is refused once the backend moved on. Afterwards the backend holds exactly what
the config declares and every means was bought exactly once (the sandbox's own audit trail says so)."""

from __future__ import annotations

import json
import random
import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from tests.apply.served import (
    EXAMPLE, Cli, Sandbox, assert_backend_matches, assert_clean_failure, assert_each_bought_once, audit_records,
    catalogue, converge, expected_state, finish, generated_config, many_users_config, request_means_events,
    run_cli, served_sandbox, write_config,
)


@pytest.fixture
def sandbox(tmp_path: Path):  # type: ignore[no-untyped-def]
    with served_sandbox(tmp_path) as served:
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
    cli.init(kvk, name, admin["email"], admin["level"])
    return kvk, admin["email"]


def _final_checks(cli: Cli, config: Path, kvk: str, admin: str) -> None:
    """Converged means: apply has nothing left, plan exits 0, the backend holds exactly the config."""
    again = cli.apply(config, kvk)
    assert again.code == 0 and "Nothing to apply" in again.out, str(again)
    final = cli.plan(config, kvk)
    assert final.code == 0, str(final)
    expected = expected_state(config, cli.sandbox.today())
    assert_backend_matches(cli.sandbox, expected)
    assert_each_bought_once(cli.sandbox, expected, admin)


# ---------------------------------------------------------------------------------------- 1. the example
def test_the_example_converges_over_http(cli: Cli) -> None:
    kvk, admin = _init_from(cli, EXAMPLE)
    first = cli.plan(EXAMPLE, kvk)
    assert first.code == 2 and "request_means" in first.out, str(first)   # there is work to do
    rounds = converge(cli, EXAMPLE, kvk, max_rounds=4)
    assert all(r.code == 0 for r in rounds.applies), [str(r) for r in rounds.applies]
    # the grants wait for activation (R7): one round cannot do it all
    assert rounds.count >= 2
    assert "request_means" not in rounds.plans[-1].out
    _final_checks(cli, EXAMPLE, kvk, admin)


# ------------------------------------------------------------------------------ 2. generated organisations
GENERATED_SEED = 20250601


def test_generated_organisations_converge_over_http(cli: Cli, tmp_path: Path) -> None:
    services = catalogue(tmp_path)
    today = cli.sandbox.today()
    rng = random.Random(GENERATED_SEED)
    configs: list[Path] = []
    for n in range(3):
        kvk = f"{rng.randrange(10**7, 10**8)}"
        config = generated_config(rng, kvk, rng.randrange(5, 16), services, today)
        configs.append(write_config(tmp_path / f"gen{n}.yaml", config))
    kinds = [expected_state(c, today) for c in configs]
    assert len({k.kvk for k in kinds}) == 3
    # a real mix: both roles, several levels, authorisations, in every organisation
    for k in kinds:
        assert 5 <= len(k.users) <= 16 and k.authorisations
        assert {u["role"] for u in k.users.values()} == {"beheerder", "gebruiker"} or len(k.users) < 8
    assert len({u["level"] for k in kinds for u in k.users.values()}) >= 3
    valid = run_cli("validate", *map(str, configs), cwd=tmp_path)
    assert valid.code == 0, str(valid)

    inits = [_init_from(cli, c) for c in configs]

    def loop(i: int) -> None:
        kvk, admin = inits[i]
        rounds = converge(cli, configs[i], kvk, max_rounds=4)
        assert all(r.code == 0 for r in rounds.applies), [str(r) for r in rounds.applies]
        _final_checks(cli, configs[i], kvk, admin)

    with ThreadPoolExecutor(max_workers=3) as pool:       # independent organisations on one server
        for future in [pool.submit(loop, i) for i in range(3)]:
            future.result()
