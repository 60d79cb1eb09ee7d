"""Embedded first use: an organisation unknown to the sandbox is created from its config (INTERFACE.md)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from reconciler.backend.bootstrap import BootstrapError, acting_admins, acting_admins_of
from reconciler.backend.connect import open_backend
from reconciler.backend.errors import BackendError
from reconciler.backend.sandbox.controls import SandboxControls, SandboxMeans, SandboxOrganisation
from reconciler.config.loader import load_paths

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "org.yaml"
TODAY = dt.date(2026, 11, 21)


@pytest.mark.anyio
async def test_first_use_creates_the_organisation_with_the_first_beheerder(tmp_path: Path) -> None:
    [org] = load_paths([str(EXAMPLE)], TODAY).orgs
    async with open_backend(f"sandbox:{tmp_path / 'sb.db'}", require_token=False) as client:
        controls = SandboxControls(client)
        first = (await acting_admins(controls, [org]))["99966564"]
        assert first.created and first.email == "j.bakker@ketelaarklip.nl"
        assert "created" in first.describe()
        me = await client.with_token(first.token).me()
        assert me.email == "j.bakker@ketelaarklip.nl" and me.level.value == "EH3"
        [means] = await controls.means(kvk="99966564")
        assert means.status == "actief" and means.roles == {"99966564": "beheerder"}
        # the second run finds it and mints a new token for the same admin
        again = (await acting_admins(controls, [org]))["99966564"]
        assert not again.created and again.email == first.email and again.token != first.token
        assert (await client.with_token(again.token).me()).means_id == first.means_id


@pytest.mark.anyio
async def test_the_token_never_shows_in_reprs(tmp_path: Path) -> None:
    [org] = load_paths([str(EXAMPLE)], TODAY).orgs
    async with open_backend(f"sandbox:{tmp_path / 'sb.db'}", require_token=False) as client:
        admin = (await acting_admins(SandboxControls(client), [org]))["99966564"]
        assert admin.token.reveal() not in repr(admin) and admin.token.reveal() not in admin.describe()


@pytest.mark.anyio
async def test_a_known_organisation_is_acted_for_by_its_active_admin(tmp_path: Path) -> None:
    [org] = load_paths([str(EXAMPLE)], TODAY).orgs
    async with open_backend(f"sandbox:{tmp_path / 'sb.db'}", require_token=False) as client:
        controls = SandboxControls(client)
        await controls.create_organisation("99966564", "Other", admin_email="x@ketelaarklip.nl", admin_name="X")
        # the config's admins are not in the sandbox; its one active admin acts
        admin = (await acting_admins(controls, [org]))["99966564"]
        assert admin.email == "x@ketelaarklip.nl" and not admin.created
        await client.with_token(admin.token).request_means("99966564", email="n@k.nl", name="N", role="beheerder",
                                                           level="EH3", second_factor="otp")
        [new] = [m for m in await controls.means(kvk="99966564") if m.email == "n@k.nl"]
        await controls.step(new.id, "reject")
        assert len(await controls.means(kvk="99966564")) == 1


@pytest.mark.anyio
async def test_a_config_without_beheerder_cannot_bootstrap(tmp_path: Path) -> None:
    path = tmp_path / "org.yaml"
    path.write_text(EXAMPLE.read_text().replace("role: beheerder", "role: gebruiker"))
    result = load_paths([str(path)], TODAY)
    assert [d.code for d in result.errors] == ["R1"]
    async with open_backend(f"sandbox:{tmp_path / 'sb.db'}", require_token=False) as client:
        with pytest.raises(BootstrapError, match="R1"):
            await acting_admins(SandboxControls(client), result.orgs)


class _StaleFirstRead(SandboxControls):
    """The real controls, except that the reads of an organisation's means before our create answer what they
    were a moment earlier (nothing): exactly what a command sees when a parallel command creates the
    organisation between its reads and its create."""

    def __init__(self, client: object, kvk: str) -> None:
        super().__init__(client)  # type: ignore[arg-type]
        self._stale = {kvk}

    async def means(self, *, status: str | None = None, kvk: str | None = None,
                    email: str | None = None) -> list[SandboxMeans]:
        if kvk in self._stale:
            return []
        return await super().means(status=status, kvk=kvk, email=email)

    async def create_organisation(self, kvk: str, *args: Any, **kwargs: Any) -> SandboxOrganisation:
        self._stale.discard(kvk)
        return await super().create_organisation(kvk, *args, **kwargs)


class _Recording(SandboxControls):
    """The real controls, recording the filters of every read of means."""

    def __init__(self, client: object) -> None:
        super().__init__(client)  # type: ignore[arg-type]
        self.reads: list[dict[str, str | None]] = []

    async def means(self, *, status: str | None = None, kvk: str | None = None,
                    email: str | None = None) -> list[SandboxMeans]:
        self.reads.append({"status": status, "kvk": kvk, "email": email})
        return await super().means(status=status, kvk=kvk, email=email)


@pytest.mark.anyio
async def test_the_first_beheerder_is_found_by_email_not_by_listing_the_organisation(tmp_path: Path) -> None:
    """Opening a session on a known organisation reads the config's first beheerder only: listing every means
    of the organisation (10,000 in benchmarks/plan_scale.py) was most of opening an embedded session. Only when
    that person does not act (here after losing the role) is the organisation listed, with the same choice."""
    [org] = load_paths([str(EXAMPLE)], TODAY).orgs
    async with open_backend(f"sandbox:{tmp_path / 'sb.db'}", require_token=False) as client:
        first = (await acting_admins(SandboxControls(client), [org]))["99966564"]
        admin = client.with_token(first.token)
        for i in range(3):
            await admin.request_means("99966564", email=f"u{i}@k.nl", name=f"U{i}", role="gebruiker", level="EH3",
                                      second_factor="otp")
        controls = _Recording(client)
        again = (await acting_admins_of(controls, {"99966564": first.email.upper()}))["99966564"]
        again2 = (await acting_admins(controls, [org]))["99966564"]
        assert controls.reads == [{"status": None, "kvk": "99966564", "email": first.email.upper()},
                                  {"status": None, "kvk": "99966564", "email": first.email}]
        assert (again.means_id, again.email, again.reason) == (first.means_id, first.email, "")
        assert (again2.means_id, again2.created, again2.reason) == (first.means_id, False, "")
        other = await admin.request_means("99966564", email="b@k.nl", name="B", role="beheerder", level="EH3",
                                          second_factor="otp")
        for step in ("approve", "activate"):
            await controls.step(other.result["id"], step)
        b_token = await controls.create_token(other.result["id"])
        await client.with_token(b_token).change_role("99966564", first.means_id, "gebruiker")
        controls.reads.clear()
        moved = (await acting_admins(controls, [org]))["99966564"]
        assert [r["email"] for r in controls.reads] == [first.email, None]
        assert moved.email == "b@k.nl" and "is not an active beheerder" in moved.reason


@pytest.mark.anyio
async def test_losing_the_first_use_race_acts_for_the_organisation_the_winner_created(tmp_path: Path) -> None:
    """Before: `already exists` (exit 1). Now the loser accepts the organisation and acts as its admin."""
    [org] = load_paths([str(EXAMPLE)], TODAY).orgs
    async with open_backend(f"sandbox:{tmp_path / 'sb.db'}", require_token=False) as client:
        winner = (await acting_admins(SandboxControls(client), [org]))["99966564"]
        loser = (await acting_admins(_StaleFirstRead(client, "99966564"), [org]))["99966564"]
        assert winner.created and not loser.created
        assert (loser.email, loser.means_id) == (winner.email, winner.means_id)
        assert (await client.with_token(loser.token).me()).means_id == winner.means_id
        assert len(await SandboxControls(client).means(kvk="99966564")) == 1


@pytest.mark.anyio
async def test_another_refusal_of_the_create_is_not_swallowed(tmp_path: Path) -> None:
    """Only `already-exists` is the race; a rule refusal still fails: here the config's first beheerder holds a
    means that still waits for approval, and the first admin must be active (R1)."""
    [org] = load_paths([str(EXAMPLE)], TODAY).orgs
    other = tmp_path / "other.yaml"
    other.write_text(EXAMPLE.read_text(encoding="utf-8").replace('kvk: "99966564"', 'kvk: "22222222"').replace(
        "j.bakker@ketelaarklip.nl", "pending@ketelaarklip.nl"), encoding="utf-8")
    [org2] = load_paths([str(other)], TODAY).orgs
    async with open_backend(f"sandbox:{tmp_path / 'sb.db'}", require_token=False) as client:
        controls = SandboxControls(client)
        admin = (await acting_admins(controls, [org]))["99966564"]
        await client.with_token(admin.token).request_means(
            "99966564", email="pending@ketelaarklip.nl", name="P", role="gebruiker", level="EH3",
            second_factor="otp")
        with pytest.raises(BackendError) as info:
            await acting_admins(controls, [org2])
        assert info.value.code == "R1"
        assert await controls.means(kvk="22222222") == []


def _orgs(folder: Path, count: int) -> Path:
    """`count` copies of the example under other KvK numbers: each is a first use the commands race for."""
    folder.mkdir()
    text = EXAMPLE.read_text(encoding="utf-8")
    for i in range(count):
        kvk = f"{70000000 + i:08d}"
        (folder / f"org{i}.yaml").write_text(text.replace('kvk: "99966564"', f'kvk: "{kvk}"'), encoding="utf-8")
    return folder


def test_four_parallel_plans_on_a_fresh_embedded_sandbox_all_succeed(tmp_path: Path) -> None:
    """4 `reconciler plan` processes at once on one fresh database: each bootstraps the same organisations
    (idempotently) and reports changes (exit 2); each organisation exists once, with one admin."""
    configs = _orgs(tmp_path / "orgs", 3)
    db = tmp_path / "sb.db"
    env = {k: v for k, v in os.environ.items() if k not in ("RECONCILER_BACKEND", "BEHEER_API_TOKEN")}
    env["NO_COLOR"] = "1"
    procs = [subprocess.Popen([sys.executable, "-m", "reconciler", "plan", str(configs), "--backend", f"sandbox:{db}",
                               "--today", TODAY.isoformat()], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [(p.wait(120), *p.communicate()) for p in procs]
    for code, out, err in results:
        assert code == 2 and "already exists" not in err and "locked" not in err, (code, err[-2000:])
    created = sum(err.count("was new to the embedded sandbox") for _, _, err in results)
    assert created == 3, [err for _, _, err in results]                 # each organisation created once

    async def count() -> dict[str, int]:
        async with open_backend(f"sandbox:{db}", require_token=False) as client:
            controls = SandboxControls(client)
            return {f"{70000000 + i:08d}": len(await controls.means(kvk=f"{70000000 + i:08d}")) for i in range(3)}

    assert anyio.run(count) == {f"{70000000 + i:08d}": 1 for i in range(3)}
