"""`reconciler drift` over real HTTP with a read-only token: it reads and reports; `apply` with the same token
is refused up front and changes nothing."""

from __future__ import annotations

from pathlib import Path

from tests.apply.served import Cli, served_sandbox

KVK = "12345678"
CONFIG = f"""\
version: 1
organisation: {{kvk: "{KVK}", name: Acme}}
users:
  - {{email: admin@acme.nl, name: Admin, role: beheerder, level: EH3, second_factor: {{type: otp}}}}
  - {{email: new@acme.nl, name: New, role: gebruiker, level: EH2}}
"""


def test_drift_reads_with_a_read_only_token_and_apply_refuses_it(tmp_path: Path) -> None:
    config = tmp_path / "org.yaml"
    config.write_text(CONFIG)
    with served_sandbox(tmp_path) as sandbox:
        cli = Cli(sandbox, tmp_path)
        cli.init(KVK, "Acme", "admin@acme.nl")
        admin = next(m for m in sandbox.means(KVK) if m["email"] == "admin@acme.nl")
        r = sandbox.http.post("/sandbox/tokens", json={"means_id": admin["id"], "read_only": True})
        assert r.status_code == 201, r.text
        read_only = r.json()["token"]
        drift = cli.run("drift", str(config), "--format", "json", token=read_only)
        assert drift.code == 2 and '"action": "request_means"' in drift.out, str(drift)
        assert "Traceback" not in drift.err
        before = sandbox.revision(KVK)
        refused = cli.run("apply", str(config), "--auto-approve", token=read_only)
        assert refused.code == 1 and "the API token is read-only" in refused.err, str(refused)
        assert sandbox.revision(KVK) == before
