"""Helpers for end-to-end tests over HTTP: a real `reconciler sandbox serve` subprocess on a free loopback port
with its own SQLite database, the `reconciler` CLI run as subprocesses against it, a few direct reads of the
served sandbox (`/sandbox/...` controls, `/v1` with the admin's token), seeded configuration generators, and
the convergence loop (apply, the supplier approves, the holders activate, until `plan` exits 0)."""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "org.yaml"
LEVELS = ["EH1", "EH2", "EH2+", "EH3", "EH4"]
#: Environment variables that would make the CLI talk to another backend or act as someone else.
_SCRUBBED = ("RECONCILER_BACKEND", "BEHEER_API_TOKEN", "SANDBOX_CONTROL_TOKEN", "FORCE_COLOR", "CLICOLOR_FORCE")
#: The header a served sandbox's `/sandbox` controls want its control token in.
CONTROL_HEADER = "Sandbox-Control-Token"


# --------------------------------------------------------------------------------------------------- CLI
@dataclass
class Result:
    args: list[str]
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err

    def __str__(self) -> str:  # what an assertion message shows
        return f"$ reconciler {' '.join(self.args)}\n-> exit {self.code}\n--- stdout\n{self.out}--- stderr\n{self.err}"


def cli_env(token: str | None = None, control_token: str | None = None) -> dict[str, str]:
    """The environment of a CLI subprocess: the admin's API token and the served sandbox's control token are
    passed here, as the CLI reads them (never as arguments)."""
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    env["NO_COLOR"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    if token is not None:
        env["BEHEER_API_TOKEN"] = token
    if control_token is not None:
        env["SANDBOX_CONTROL_TOKEN"] = control_token
    return env


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "reconciler", *args]


def run_cli(*args: str, cwd: Path, token: str | None = None, timeout: float = 120.0,
            control_token: str | None = None) -> Result:
    done = subprocess.run(cli_command(*args), cwd=cwd, env=cli_env(token, control_token), capture_output=True,
                          text=True, timeout=timeout, check=False)
    return Result(list(args), done.returncode, done.stdout, done.stderr)


def start_cli(*args: str, cwd: Path, token: str | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(cli_command(*args), cwd=cwd, env=cli_env(token), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str], args: list[str], timeout: float = 120.0) -> Result:
    """Wait for a started CLI process (killed, and the test failed, if it hangs)."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"reconciler {' '.join(args)} did not finish within {timeout} s:\n{out}\n{err}")
    return Result(args, proc.returncode, out, err)


@functools.cache
def catalogue() -> list[dict[str, Any]]:
    """The bundled catalogue, as `reconciler catalogue list --format json` prints it (it writes nothing)."""
    r = run_cli("catalogue", "list", "--format", "json", cwd=Path(tempfile.gettempdir()))
    assert r.code == 0, str(r)
    services = json.loads(r.out)
    assert len(services) >= 12, str(r)
    return services  # type: ignore[no-any-return]


# ------------------------------------------------------------------------------------------------ server
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Sandbox:
    """A served sandbox: `http` sends the control token (the `/sandbox` controls need it); `/v1` reads use an
    organisation's admin token."""

    url: str
    proc: subprocess.Popen[bytes]
    http: httpx.Client
    control_token: str = ""
    tokens: dict[str, str] = field(default_factory=dict)     # kvk -> its admin's token

    # /sandbox controls (never faulted)
    def means(self, kvk: str) -> list[dict[str, Any]]:
        r = self.http.get("/sandbox/means", params={"kvk": kvk})
        assert r.status_code == 200, r.text
        return sorted(r.json()["items"], key=lambda m: (m["email"], m["id"]))

    def today(self) -> dt.date:
        r = self.http.get("/sandbox/clock")
        assert r.status_code == 200, r.text
        return dt.date.fromisoformat(r.json()["today"])

    def set_today(self, day: dt.date) -> None:
        r = self.http.post("/sandbox/clock", json={"today": day.isoformat()})
        assert r.status_code == 200 and r.json()["today"] == day.isoformat(), r.text

    def faults(self, **config: Any) -> None:
        r = self.http.post("/sandbox/faults", json=config)
        assert r.status_code == 200, r.text

    def requests(self) -> dict[str, Any]:
        r = self.http.get("/sandbox/requests")
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    def reset_requests(self) -> None:
        assert self.http.delete("/sandbox/requests").status_code == 204

    # /v1 reads as the organisation's admin (call these with faults off)
    def _v1(self, kvk: str, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        r = self.http.get(f"/v1/organisations/{kvk}{path}", params=params,
                          headers={"Authorization": f"Bearer {self.tokens[kvk]}"})
        assert r.status_code == 200, r.text
        return r

    def _all(self, kvk: str, path: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 100}
            if cursor:
                params["cursor"] = cursor
            data = self._v1(kvk, path, params).json()
            items += data["items"]
            cursor = data.get("next_cursor")
            if not cursor:
                return items

    def revision(self, kvk: str) -> int:
        return int(self._v1(kvk, "").json()["revision"])

    def events(self, kvk: str) -> list[dict[str, Any]]:
        return self._all(kvk, "/events")

    def authorisations(self, kvk: str) -> list[dict[str, Any]]:
        return self._all(kvk, "/authorisations")

    def chains(self, kvk: str) -> list[dict[str, Any]]:
        return self._all(kvk, "/chain-authorisations")


@contextmanager
def served_sandbox(tmp_path: Path, host: str = "127.0.0.1") -> Iterator[Sandbox]:
    """`reconciler sandbox serve --db tmp_path/sandbox.db --port FREE` as a subprocess, stopped afterwards; its
    control token comes from SANDBOX_CONTROL_TOKEN (random per sandbox). `host` is the name the URL uses for
    it (the server binds 127.0.0.1): `localhost` proves a loopback name works too."""
    db = tmp_path / "sandbox.db"
    log = tmp_path / "serve.log"
    control_token = secrets.token_urlsafe(24)
    for _ in range(3):                          # the free port may be taken between the probe and the bind
        port = _free_port()
        with log.open("ab") as sink:
            proc = subprocess.Popen(cli_command("sandbox", "serve", "--db", str(db), "--host", "127.0.0.1",
                                                "--port", str(port)),
                                    cwd=tmp_path, env=cli_env(control_token=control_token), stdout=sink, stderr=sink)
        url = f"http://{host}:{port}"
        http = httpx.Client(base_url=url, timeout=10.0, headers={CONTROL_HEADER: control_token})
        deadline = time.monotonic() + 20
        up = False
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                up = http.get("/sandbox/clock").status_code == 200
            except httpx.TransportError:
                up = False
            if up:
                break
            time.sleep(0.05)
        if up:
            break
        http.close()
        _stop(proc)
    else:
        raise RuntimeError(f"the sandbox server did not start:\n{log.read_text(errors='replace')}")
    try:
        yield Sandbox(url, proc, http, control_token)
    finally:
        http.close()
        _stop(proc)
        tail = log.read_text(errors="replace")
        assert "Traceback" not in tail, f"the sandbox server logged a traceback:\n{tail}"


def _stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)         # uvicorn shuts down gracefully on SIGINT
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


# ----------------------------------------------------------------------------------- a CLI on the sandbox
@dataclass
class Cli:
    """The CLI against one served sandbox, run in `cwd` (so nothing lands in the repository)."""

    sandbox: Sandbox
    cwd: Path

    def run(self, *args: str, token: str | None = None, timeout: float = 120.0) -> Result:
        return run_cli(*args, "--backend", self.sandbox.url, cwd=self.cwd, token=token, timeout=timeout,
                       control_token=self.sandbox.control_token)

    def init(self, kvk: str, name: str, admin: str, level: str = "EH3", factor: dict[str, str] | None = None) -> str:
        """`sandbox init`: the token is the only line on stdout (the rest goes to stderr)."""
        extra = ["--second-factor", factor["type"]] + (["--phone", factor["phone"]] if "phone" in factor else []) \
            if factor else []
        r = self.run("sandbox", "init", "--kvk", kvk, "--name", name, "--admin", admin, "--level", level, *extra)
        assert r.code == 0, str(r)
        lines = r.out.strip().splitlines()
        assert len(lines) == 1 and len(lines[0]) >= 32, str(r)
        assert admin in r.err and f"organisation {kvk}" in r.err, str(r)
        self.sandbox.tokens[kvk] = lines[0]
        return lines[0]

    def apply_args(self, config: Path, kvk: str, *extra: str) -> list[str]:
        return ["apply", str(config), "--auto-approve", "-q", "--audit-log", str(self.audit_log(kvk)),
                "--backend", self.sandbox.url, *extra]

    def audit_log(self, kvk: str) -> Path:
        return self.cwd / f"audit-{kvk}.jsonl"

    def apply(self, config: Path, kvk: str, *extra: str) -> Result:
        args = self.apply_args(config, kvk, *extra)
        return run_cli(*args, cwd=self.cwd, token=self.sandbox.tokens[kvk])

    def start_apply(self, config: Path, kvk: str, *extra: str) -> tuple[subprocess.Popen[str], list[str]]:
        args = self.apply_args(config, kvk, *extra)
        return start_cli(*args, cwd=self.cwd, token=self.sandbox.tokens[kvk]), args

    def plan(self, config: Path, kvk: str, *extra: str) -> Result:
        return self.run("plan", str(config), *extra, token=self.sandbox.tokens[kvk])

    def lifecycle(self, step: str, kvk: str) -> Result:
        r = self.run("sandbox", step, "--all", "--kvk", kvk)
        assert r.code == 0 and "Traceback" not in r.err, str(r)
        return r


# ------------------------------------------------------------------------------------------ convergence
@dataclass
class Rounds:
    applies: list[Result] = field(default_factory=list)
    plans: list[Result] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.plans)


def converge(cli: Cli, config: Path, kvk: str, *, max_rounds: int = 4, allow_failed_apply: bool = False,
             max_applies_per_round: int = 1) -> Rounds:
    """Repeat: apply --auto-approve -q, approve --all, activate --all, until `plan` exits 0.

    Each apply must exit 0; with `allow_failed_apply` it may also exit 1 with a clean report (then it is run
    again, up to `max_applies_per_round` times in the round). Fails unless `plan` exits 0 within `max_rounds`."""
    rounds = Rounds()
    for _ in range(max_rounds):
        for _attempt in range(max_applies_per_round):
            r = cli.apply(config, kvk)
            rounds.applies.append(r)
            assert "Traceback" not in r.text, str(r)
            if r.code == 0:
                break
            assert allow_failed_apply and r.code == 1, str(r)
            assert_clean_failure(r)
        cli.lifecycle("approve", kvk)
        cli.lifecycle("activate", kvk)
        p = cli.plan(config, kvk)
        rounds.plans.append(p)
        assert "Traceback" not in p.text, str(p)
        if p.code == 0:
            return rounds
        assert p.code == 2 or (allow_failed_apply and p.code == 1), str(p)
    raise AssertionError(f"plan did not exit 0 within {max_rounds} rounds; last plan:\n{rounds.plans[-1]}")


def assert_clean_failure(r: Result) -> None:
    """A failed apply ends cleanly: either its report (what failed and why, the steps not attempted) or, when
    it failed before sending anything, one `error: ...` line; never a traceback."""
    assert r.code == 1 and "Traceback" not in r.text, str(r)
    report = [line for line in r.out.splitlines() if line.startswith("Apply: ")]
    if report:
        assert "FAILED" in r.out and "the next apply finishes the job" in r.out, str(r)
    else:
        lines = r.err.strip().splitlines()
        assert lines and lines[-1].lower().startswith("error: ") and len(lines[-1]) < 1000, str(r)


# --------------------------------------------------------------------------------------- expected state
@dataclass(frozen=True)
class Expected:
    """What a config declares, in the terms the backend lists."""

    kvk: str
    users: dict[str, dict[str, str]]            # e-mail -> {role, level, type}
    authorisations: set[tuple[str, str]]        # (e-mail, service key)
    chains: dict[str, set[str]]                 # intermediary kvk -> service keys


def expected_state(config: Path, today: dt.date) -> Expected:
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    groups = {name: g.get("authorisations", []) for name, g in (data.get("groups") or {}).items()}
    unmanaged = {e.lower() for e in (data.get("policy") or {}).get("unmanaged", [])}
    users: dict[str, dict[str, str]] = {}
    auths: set[tuple[str, str]] = set()

    def live(until: Any) -> bool:
        return until == "rolling" or dt.date.fromisoformat(str(until)) > today

    for u in data["users"]:
        email = u["email"].lower()
        if email in unmanaged:
            continue
        users[email] = {"role": u["role"], "level": u["level"], "type": u.get("type", "regulier")}
        granted = list(u.get("authorisations", []))
        for g in u.get("groups", []):
            granted += groups[g]
        auths |= {(email, a["service"]) for a in granted if live(a["until"])}
    chains: dict[str, set[str]] = {}                 # an intermediary may have entries per until (R18)
    for c in data.get("chain_authorisations") or []:
        if live(c["until"]):
            chains.setdefault(str(c["intermediary"]["kvk"]), set()).update(c["services"])
    return Expected(str(data["organisation"]["kvk"]), users, auths, chains)


def assert_backend_matches(sandbox: Sandbox, expected: Expected) -> None:
    """Every declared person has exactly one means, active, with the declared role, level and type; the
    authorisations and chain authorisations are exactly the declared ones."""
    kvk = expected.kvk
    means = sandbox.means(kvk)
    counts = Counter(m["email"].lower() for m in means)
    doubled = {e: n for e, n in counts.items() if n > 1}
    assert not doubled, f"means bought more than once: {doubled}"
    assert set(counts) == set(expected.users), (sorted(set(counts) ^ set(expected.users)))
    for m in means:
        want = expected.users[m["email"].lower()]
        [role] = [ms["role"] for ms in m["memberships"] if ms["kvk"] == kvk]
        got = {"role": role, "level": m["level"], "type": m["type"]}
        assert (m["status"], got) == ("actief", want), (m["email"], m["status"], got, want)
    held = {(a["email"].lower(), a["service_key"]) for a in sandbox.authorisations(kvk)}
    assert held == expected.authorisations, {"missing": sorted(expected.authorisations - held),
                                             "extra": sorted(held - expected.authorisations)}
    chains = {c["intermediary_kvk"]: {s["service"] for s in c["services"]} for c in sandbox.chains(kvk)}
    uuid_to_key = {}
    for s in sandbox.http.get("/v1/services", params={"limit": 100},
                              headers={"Authorization": f"Bearer {sandbox.tokens[kvk]}"}).json()["items"]:
        uuid_to_key[s["uuid"]] = s["key"]
    chains = {k: {uuid_to_key.get(s, s) for s in v} for k, v in chains.items()}
    assert chains == expected.chains, (chains, expected.chains)


def request_means_events(sandbox: Sandbox, kvk: str) -> list[dict[str, Any]]:
    return [e for e in sandbox.events(kvk) if e["action"] == "request_means"]


def assert_each_bought_once(sandbox: Sandbox, expected: Expected, admin: str) -> None:
    """The backend's audit trail: exactly one successful request_means per declared e-mail (the admin was
    created by `sandbox init`), and no request refused because the person already held a means (R15: the
    reconciler tried to buy one twice)."""
    events = request_means_events(sandbox, expected.kvk)
    ok = Counter(str(e["target"]).lower() for e in events if e["outcome"] == "ok")
    assert ok == Counter(e for e in expected.users if e != admin.lower()), ok
    again = [e for e in events if e["outcome"] != "ok" and e["code"] == "R15"]
    assert not again, again


# ------------------------------------------------------------------------------------------ generation
def generated_config(rng: random.Random, kvk: str, n_users: int, services: list[dict[str, Any]], today: dt.date,
                     *, domain: str | None = None, extras: bool = True) -> dict[str, Any]:
    """A valid organisation with `n_users` people: the first an EH3 beheerder with OTP (as `sandbox init`
    creates it), the others a seeded mix of roles, levels, second factors, subscriptions, a group and
    authorisations (rolling or dated) from the catalogue; with `extras` maybe a tax means and a chain
    authorisation."""
    domain = domain or f"org{kvk}.nl"
    regular = [s for s in services if not s.get("belastingdienst") and s["level"] in LEVELS[:4]]
    tax = [s["key"] for s in services if s.get("belastingdienst")]

    def until() -> Any:
        return "rolling" if rng.random() < 0.5 else today + dt.timedelta(days=rng.randrange(30, 4 * 365))

    def fits(level: str) -> list[str]:
        return sorted(s["key"] for s in regular if LEVELS.index(s["level"]) <= LEVELS.index(level))

    group_services = rng.sample(fits("EH2"), 2)
    users: list[dict[str, Any]] = [{"email": f"admin@{domain}", "name": "Admin", "role": "beheerder",
                                    "level": "EH3", "second_factor": {"type": "otp"}}]
    for i in range(1, n_users):
        role = "beheerder" if rng.random() < 0.2 else "gebruiker"
        level = rng.choice(["EH2+", "EH3"] if role == "beheerder" else ["EH2", "EH2+", "EH3"])
        user: dict[str, Any] = {"email": f"user{i:02d}@{domain}", "name": f"User {i}", "role": role, "level": level}
        if level != "EH2":
            user["second_factor"] = ({"type": "otp"} if rng.random() < 0.5 else
                                     {"type": "sms", "phone": f"+316{rng.randrange(10**7, 10**8)}"})
        if rng.random() < 0.3:
            user["subscription"] = "3y"
        own = [k for k in fits(level) if k not in group_services]
        if rng.random() < 0.4:
            user["groups"] = ["team"]
        picked = rng.sample(own, rng.randrange(0, 3))
        if picked:
            user["authorisations"] = [{"service": k, "until": until()} for k in picked]
        users.append(user)
    config: dict[str, Any] = {
        "version": 1,
        "organisation": {"kvk": kvk, "name": f"Generated {kvk}"},
        "policy": {"prune": True},
        "groups": {"team": {"authorisations": [{"service": k, "until": until()} for k in group_services]}},
        "users": users,
    }
    if extras and rng.random() < 0.5:
        users.append({"email": f"belasting@{domain}", "name": "Aangifte", "role": "gebruiker", "level": "EH3",
                      "type": "belastingdienst", "second_factor": {"type": "otp"},
                      "authorisations": [{"service": rng.choice(tax), "until": "rolling"}]})
    if extras and rng.random() < 0.5:
        config["chain_authorisations"] = [{
            "intermediary": {"kvk": str(rng.randrange(10**7, 10**8)), "name": "Accountants"},
            "services": [rng.choice(fits("EH3"))], "until": today + dt.timedelta(days=rng.randrange(60, 4 * 365))}]
    return config


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def many_users_config(kvk: str, n_users: int, *, domain: str | None = None, grants: bool = True) -> dict[str, Any]:
    """An admin and `n_users - 1` plain EH2 users (each with one rolling authorisation when `grants`): many
    cheap request_means steps, no second factors."""
    domain = domain or f"org{kvk}.nl"
    users: list[dict[str, Any]] = [{"email": f"admin@{domain}", "name": "Admin", "role": "beheerder",
                                    "level": "EH3", "second_factor": {"type": "otp"}}]
    users += [{"email": f"user{i:02d}@{domain}", "name": f"User {i}", "role": "gebruiker", "level": "EH2"}
              for i in range(1, n_users)]
    if grants:
        for user in users[1:]:
            user["authorisations"] = [{"service": "rvo/tenderned", "until": "rolling"}]
    return {"version": 1, "organisation": {"kvk": kvk, "name": f"Many {kvk}"}, "users": users}


def audit_records(path: Path, *, being_written: bool = False) -> list[dict[str, Any]]:
    """The audit log's records. A log that a running apply is writing may end in a line the reader sees only in
    part (the writer appends each line with one write, but a concurrent read can copy a prefix of it):
    `being_written` leaves out a last line without its newline. A finished log must parse whole."""
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    if being_written and not text.endswith("\n"):
        text = text[:text.rfind("\n") + 1]
    return [json.loads(line) for line in text.splitlines() if line.strip()]
