"""Helpers for the import tests: the CLI in-process on an embedded sandbox with a fixed clock, and the round
trip every import must pass (import -> validate exit 0 -> plan exit 0, nothing changed, deferred, manual or
unmanaged but what the import itself left out)."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any, Awaitable, Callable

import anyio
import yaml
from click.testing import CliRunner

from reconciler.cli.main import cli
from tests.apply.served import Result

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "org.yaml"
#: The sandbox's today in these tests, so the example's dates and generated ones mean the same on any day.
TODAY = dt.date(2026, 1, 15)
LEFT_OUT = re.compile(r"^  # - (?:email|intermediary): \{?(?:kvk: )?\"?([^\",}\s]+)", re.MULTILINE)




def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return Result(list(args), result.exit_code, result.stdout, result.stderr)


class Repo:
    """A working directory with one embedded sandbox whose clock is fixed at TODAY."""

    def __init__(self, tmp: Path, today: dt.date = TODAY) -> None:
        self.tmp = tmp
        self.db = tmp / "sb.db"
        self.backend = f"sandbox:{self.db}"
        self.today = today
        self.ok("sandbox", "clock", "set", today.isoformat())

    def run(self, *args: str) -> Result:
        return invoke(*args, "--backend", self.backend)

    def ok(self, *args: str) -> Result:
        r = self.run(*args)
        assert r.code == 0 and "Traceback" not in r.err, str(r)
        return r

    def write(self, name: str, config: dict[str, Any] | str) -> Path:
        path = self.tmp / name
        path.write_text(config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False),
                        encoding="utf-8")
        return path

    def apply(self, *paths: Path) -> Result:
        return self.ok("apply", *map(str, paths), "--auto-approve", "-q", "--audit-log", "-")

    def step(self, step: str, *emails: str) -> None:
        """`sandbox approve|activate|expire EMAIL...` (or --all)."""
        self.ok("sandbox", step, *(emails or ("--all",)))

    def import_(self, kvk: str, *extra: str) -> Result:
        return self.run("import", "--kvk", kvk, *extra)

    def act(self, kvk: str, work: Callable[[Any], Awaitable[Any]]) -> Any:
        """Run `work(client)` with a token of an active beheerder of `kvk` (a person at the Beheermodule)."""
        from reconciler.backend.bootstrap import acting_admins_of
        from reconciler.backend.connect import open_backend
        from reconciler.backend.sandbox.controls import SandboxControls

        async def go() -> Any:
            async with open_backend(self.backend, require_token=False) as client:
                admin = (await acting_admins_of(SandboxControls(client), {kvk: None}))[kvk]
                return await work(client.with_token(admin.token))
        return anyio.run(go)

    def means_id(self, kvk: str, email: str) -> str:
        async def work(client: Any) -> str:
            return next(m.id for m in await client.list_all_means(kvk) if m.email.lower() == email.lower())
        return str(self.act(kvk, work))

    def round_trip(self, kvk: str, out: Path | None = None) -> Path:
        """Import `kvk` into `out`, then validate and plan it: valid, and a plan with nothing to do."""
        out = out or self.tmp / "imported"
        r = self.import_(kvk, "--out", str(out))
        assert r.code == 0 and f"wrote {out / f'{kvk}.yaml'}" in r.err, str(r)
        path = out / f"{kvk}.yaml"
        self.assert_quiet(path)
        return path

    def assert_quiet(self, path: Path) -> dict[str, Any]:
        valid = invoke("validate", str(path), "--today", self.today.isoformat())
        assert valid.code == 0 and "0 errors" in valid.out, str(valid) + path.read_text()
        plan = self.run("plan", str(path), "--format", "json")
        assert plan.code == 0, str(plan) + path.read_text()
        data = json.loads(plan.out)
        [org] = data["organisations"]
        assert (org["changes"], org["deferred"], org["manual"], org["warnings"]) == ([], [], [], []), plan.out
        # completeness: with prune false, what the backend has and the file does not declare is listed as
        # unmanaged; only what the import left out on purpose (and said so) may be
        unmanaged = {u["target"] for u in org["unmanaged"]}
        assert unmanaged == set(LEFT_OUT.findall(path.read_text())), (unmanaged, path.read_text())
        return data


def plain(value: Any) -> Any:
    """YAML's dates as ISO strings, as the config loader keeps them."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value.isoformat() if isinstance(value, dt.date) else value


def load(path: Path) -> dict[str, Any]:
    return plain(yaml.safe_load(path.read_text(encoding="utf-8")))  # type: ignore[no-any-return]
