"""`reconciler plan` end to end on the embedded sandbox: output, exit codes (0 / 2 / 1), --out, errors."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from reconciler.cli.main import cli

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "org.yaml"

ONLY_ADMIN = """\
version: 1
organisation: {kvk: "12345678", name: Acme}
users:
  - {email: admin@acme.nl, name: Admin, role: beheerder, level: EH3, second_factor: {type: otp}}
"""


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_the_example_plans_requests_first_and_exits_2(tmp_path: Path) -> None:
    code, out, err = invoke("plan", str(EXAMPLE), "--backend", f"sandbox:{tmp_path / 'sb.db'}")
    assert code == 2
    assert "note: organisation 99966564 was new to the embedded sandbox" in err
    assert "+ request_means  beheerder, EH3  [privilege escalation]" in out
    assert "(deferred, R7:" in out
    assert out.rstrip().splitlines()[-1].startswith("Plan: 9 to add, 0 to change, 0 to remove, 7 deferred")


def test_in_sync_exits_0(tmp_path: Path) -> None:
    path = tmp_path / "org.yaml"
    path.write_text(ONLY_ADMIN)
    backend = f"sandbox:{tmp_path / 'sb.db'}"
    code, out, _ = invoke("plan", str(path), "--backend", backend)
    assert code == 0 and "no changes: the backend matches the config" in out
    assert "Plan: 0 to add, 0 to change, 0 to remove; 0 API calls" in out


def test_json_and_out(tmp_path: Path) -> None:
    out_file = tmp_path / "plan.json"
    code, out, _ = invoke("plan", str(EXAMPLE), "--backend", f"sandbox:{tmp_path / 'sb.db'}", "--format", "json",
                          "--out", str(out_file))
    assert code == 2
    data = json.loads(out)
    assert data == json.loads(out_file.read_text())
    [org] = data["organisations"]
    assert org["kvk"] == "99966564" and org["revision"] >= 1
    assert {c["action"] for c in org["changes"]} == {"request_means", "grant", "issue_chain"}
    assert all(d["rule"] == "R7" for d in org["deferred"])
    assert data["summary"]["api_calls"] == len(org["changes"]) == 9
    assert data["config_digest"].startswith("sha256:")


def test_invalid_config_exits_1_with_positions(tmp_path: Path) -> None:
    path = tmp_path / "org.yaml"
    path.write_text(ONLY_ADMIN.replace("level: EH3", "level: EH2"))
    code, out, err = invoke("plan", str(path), "--backend", f"sandbox:{tmp_path / 'sb.db'}")
    assert code == 1 and out == ""
    assert f"{path}:4:" in err and "error[R2]" in err
    assert not (tmp_path / "sb.db").exists()          # nothing was touched


def test_remote_backend_needs_a_token(tmp_path: Path) -> None:
    path = tmp_path / "org.yaml"
    path.write_text(ONLY_ADMIN)
    code, _, err = invoke("plan", str(path), "--backend", "https://beheer.example.nl", env={"BEHEER_API_TOKEN": ""})
    assert code == 1 and "BEHEER_API_TOKEN" in err and "Traceback" not in err


def test_unknown_backend_spec_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "org.yaml"
    path.write_text(ONLY_ADMIN)
    code, _, err = invoke("plan", str(path), "--backend", "ftp://x")
    assert code == 1 and "allowed: sandbox:PATH" in err


def test_tariffs_override_the_cost(tmp_path: Path) -> None:
    tariffs = tmp_path / "tariffs.yaml"
    tariffs.write_text("otp_device: 0\nmeans: {EH3: [100, 200]}\n")
    code, out, _ = invoke("plan", str(EXAMPLE), "--backend", f"sandbox:{tmp_path / 'sb.db'}", "--format", "json",
                          "--tariffs", str(tariffs))
    data = json.loads(out)
    assert code == 2 and data["cost"]["once"] == 0.0
    default = json.loads(invoke("plan", str(EXAMPLE), "--backend", f"sandbox:{tmp_path / 'sb.db'}", "--format",
                                "json")[1])
    assert data["cost"]["yearly"] > default["cost"]["yearly"]
    tariffs.write_text("nonsense: 1\n")
    code, _, err = invoke("plan", str(EXAMPLE), "--backend", f"sandbox:{tmp_path / 'sb.db'}", "--tariffs",
                          str(tariffs))
    assert code == 1 and "tariff file" in err
