"""Embedded first use: an organisation unknown to the sandbox is created from its config (INTERFACE.md)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from reconciler.backend.bootstrap import BootstrapError, acting_admins
from reconciler.backend.connect import open_backend
from reconciler.backend.sandbox.controls import SandboxControls
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
