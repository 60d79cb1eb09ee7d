"""`reconciler conformance` against a sandbox served over real HTTP (`reconciler sandbox serve` in a subprocess):
the sandbox passes every probe, each rule the fault switch turns off fails exactly its own probes, a backend
without the control interface gets skips (never passes) for what needs the supplier, and usage problems are one
line and exit 1."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from click.testing import CliRunner

from reconciler.backend.types import Secret
from reconciler.cli.conformance import conformance
from reconciler.conformance.probes import PROBES
from reconciler.conformance.report import render_json, render_text
from reconciler.conformance.runner import ConformanceUnusable, Outcome, ProbeResult, Report, run_conformance
from tests.apply.served import Sandbox, served_sandbox

HOME_KVK = "55500011"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """One served sandbox for the module, with a home organisation whose admin token is BEHEER_API_TOKEN."""
    with served_sandbox(tmp_path_factory.mktemp("conformance")) as served:
        r = served.http.post("/sandbox/organisations", json={
            "kvk": HOME_KVK, "name": "Home", "admin": {"email": "home@example.nl", "name": "Home", "level": "EH3"}})
        assert r.status_code == 201, r.text
        served.tokens[HOME_KVK] = r.json()["token"]
        yield served


def kit(sandbox: Sandbox, *, control: bool = True, only: set[str] | None = None) -> Report:
    return anyio.run(lambda: run_conformance(
        sandbox.url, Secret(sandbox.tokens[HOME_KVK]),
        control_token=Secret(sandbox.control_token) if control else None, only=only))


def outcomes(report: Report) -> dict[str, Outcome]:
    return {r.id: r.outcome for r in report.results}


def invoke(sandbox: Sandbox, *args: str, token: bool = True, control: bool = True) -> Any:
    env = {"BEHEER_API_TOKEN": sandbox.tokens[HOME_KVK] if token else "",
           "SANDBOX_CONTROL_TOKEN": sandbox.control_token if control else "", "RECONCILER_BACKEND": ""}
    return CliRunner().invoke(conformance, ["--backend", sandbox.url, *args], env=env)


@pytest.fixture
def broken(sandbox: Sandbox) -> Iterator[Any]:
    """Turn rule checks off in the served sandbox (`POST /sandbox/faults/rules`), and every one on again after."""

    def switch(*names: str) -> None:
        r = sandbox.http.post("/sandbox/faults/rules", json={"disabled": list(names)})
        assert r.status_code == 200 and r.json()["disabled"] == sorted(names), r.text

    yield switch
    switch()


def test_the_served_sandbox_passes_every_probe_and_the_kit_ends_what_it_made(sandbox: Sandbox) -> None:
    home_revision, home_events = sandbox.revision(HOME_KVK), len(sandbox.events(HOME_KVK))
    today = sandbox.today()
    report = kit(sandbox)
    got = outcomes(report)
    assert list(got) == [p.id for p in PROBES]
    assert {k for k, v in got.items() if v is not Outcome.PASS} == set(), render_text(report)
    assert report.passed and report.organisations >= len(PROBES) and report.cleaned == report.organisations
    assert report.cleanup_problems == []
    left = [m for m in sandbox.http.get("/sandbox/means").json()["items"] if "conformance.example" in m["email"]]
    assert left == []                                     # every throw-away organisation and person is gone
    assert (sandbox.revision(HOME_KVK), len(sandbox.events(HOME_KVK))) == (home_revision, home_events)
    assert sandbox.today() == today                       # R5 moved the clock and set it back


# Each switch turns one check off; the probes that hold that rule, and no others, must fail.
FAULTS = {
    "R4": {"R4-level"},
    "R4-link": {"R4-link"},
    "R9": {"R9"},
    "R13": {"R13-level", "R13-admin", "R13-one"},
    "R18": {"R18"},
    "R19": {"R19"},
    "idempotency": {"idempotency-mismatch"},
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_disabled_rule_fails_exactly_its_probes(sandbox: Sandbox, broken: Any, fault: str) -> None:
    broken(fault)
    report = kit(sandbox)
    failed = {k for k, v in outcomes(report).items() if v is Outcome.FAIL}
    assert failed == FAULTS[fault], render_text(report)
    assert not report.passed and report.cleaned == report.organisations


def test_the_table_names_what_was_expected_and_what_came_and_exits_1(sandbox: Sandbox, broken: Any) -> None:
    broken("R9")
    result = invoke(sandbox, "--only", "R9,R4")
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert [line.split()[:2] for line in lines if line.startswith(("PASS", "FAIL", "SKIP"))] == [
        ["PASS", "R4-level"], ["PASS", "R4-link"], ["FAIL", "R9"]]
    assert "check:    a grant until five years and one day ahead" in result.output
    assert "expected: 409 R9" in result.output and "got:      200 accepted" in result.output
    assert "2 passed, 1 failed, 0 skipped" in result.output and lines[-1] == "does not conform"
    assert sandbox.tokens[HOME_KVK] not in result.output and sandbox.control_token not in result.output


def test_json_for_machines_and_exit_0_when_all_ran_passed(sandbox: Sandbox) -> None:
    result = invoke(sandbox, "--only", "idempotency,if-match,R18", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["passed"] is True and data["summary"] == {"pass": 4, "fail": 0, "skip": 0}
    assert [(p["id"], p["outcome"]) for p in data["probes"]] == [
        ("R18", "pass"), ("idempotency-replay", "pass"), ("idempotency-mismatch", "pass"), ("if-match", "pass")]
    assert data["cleanup"]["organisations"] == data["cleanup"]["ended"] == 4


def test_without_the_control_interface_the_supplier_steps_are_skipped_never_passed(sandbox: Sandbox) -> None:
    report = kit(sandbox, control=False)
    got = outcomes(report)
    assert got.pop("auth-token") is Outcome.PASS            # needs nothing but the API token
    assert set(got.values()) == {Outcome.SKIP}
    assert all("control interface" in r.reason for r in report.results if r.id != "auth-token")
    assert report.passed and report.organisations == 0
    text = render_text(report)
    assert f"1 passed, 0 failed, {len(PROBES) - 1} skipped; 0 throw-away organisations made" in text
    assert text.rstrip().endswith("conforms, except the skipped probes (not checked)")
    assert "control interface: none (SANDBOX_CONTROL_TOKEN unset)" in text


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(("args", "env", "says"), [
    ([], {"BEHEER_API_TOKEN": ""}, "BEHEER_API_TOKEN is not set"),
    (["--backend", "http://127.0.0.1:{port}"], {}, "cannot reach the backend at http://127.0.0.1:"),
    (["--backend", "sandbox:x.db"], {}, "the conformance kit talks HTTP"),
    (["--backend", "http://example.nl"], {}, "refusing --backend http://example.nl: plain http"),
])
def test_a_usage_problem_is_one_line_and_exit_1(tmp_path: Path, args: list[str], env: dict[str, str],
                                                says: str) -> None:
    args = [a.replace("{port}", str(_closed_port())) for a in args] or ["--backend", "http://127.0.0.1:1"]
    result = CliRunner().invoke(conformance, args, env={"BEHEER_API_TOKEN": "t" * 20, "SANDBOX_CONTROL_TOKEN": "",
                                                        **env})
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and says in lines[0], result.output
    assert "Traceback" not in result.output


def test_a_wrong_token_or_an_unknown_probe_is_refused_before_anything_is_made(sandbox: Sandbox) -> None:
    made = len(sandbox.http.get("/sandbox/means").json()["items"])
    result = CliRunner().invoke(conformance, ["--backend", sandbox.url], env={
        "BEHEER_API_TOKEN": "not-a-token-of-this-backend", "SANDBOX_CONTROL_TOKEN": sandbox.control_token})
    assert result.exit_code == 1 and "did not accept BEHEER_API_TOKEN (401)" in result.output, result.output
    result = CliRunner().invoke(conformance, ["--backend", sandbox.url], env={
        "BEHEER_API_TOKEN": sandbox.tokens[HOME_KVK], "SANDBOX_CONTROL_TOKEN": "wrong-control-token-value"})
    assert result.exit_code == 1 and "did not accept SANDBOX_CONTROL_TOKEN" in result.output, result.output
    result = invoke(sandbox, "--only", "R4,R99")
    assert result.exit_code == 1 and "--only: no probe is called R99; known:" in result.output, result.output
    assert len(sandbox.http.get("/sandbox/means").json()["items"]) == made


def test_an_unknown_rule_fault_is_refused(sandbox: Sandbox) -> None:
    r = sandbox.http.post("/sandbox/faults/rules", json={"disabled": ["R99"]})
    assert r.status_code == 422 and "unknown rule fault R99" in r.json()["detail"]
    assert sandbox.http.get("/sandbox/faults/rules").json()["disabled"] == []


def test_what_the_backend_says_is_escaped_in_the_table_and_the_json() -> None:
    hostile = "409 R9 (\x1b[2J\x1b]0;owned\x07 \u202eevil\nFAIL  forged line)"
    report = Report(backend="http://127.0.0.1:1", control="none", results=[
        ProbeResult("R9", "R9", "end dates", Outcome.FAIL, check="a grant", expected="409 R9", got=hostile)])
    text = render_text(report)
    assert "\x1b" not in text and "\u202e" not in text and "\x07" not in text
    assert "got:      409 R9 (\\x1b[2J\\x1b]0;owned\\x07 \\u202eevil\\nFAIL  forged line)" in text
    assert not any(line.startswith("FAIL  forged") for line in text.splitlines())
    encoded = render_json(report)
    assert "\u202e" not in encoded and json.loads(encoded)["probes"][0]["got"] == hostile


def test_the_library_refuses_an_embedded_backend() -> None:
    with pytest.raises(ConformanceUnusable, match="talks HTTP"):
        anyio.run(lambda: run_conformance("sandbox:x.db", Secret("t" * 20)))
