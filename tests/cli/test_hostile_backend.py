"""A hostile backend's identifiers end to end (`plan`, `apply`, `drift` on the embedded sandbox, its database
edited to hold what a compromised backend could send): one line, exit 1, nothing sent, never an internal error."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli.main import cli

KVK = "12345678"
CONFIG = """\
version: 1
organisation: {kvk: "12345678", name: Acme}
users:
  - {email: admin@acme.nl, name: Admin, role: beheerder, level: EH3, second_factor: {type: otp}}
  - {email: bob@acme.nl, name: Bob, role: ROLE, level: EH3, second_factor: {type: otp}}
"""


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def _rename_means(db: Path, email: str, new_id: str) -> None:
    """What a backend could answer: the means of `email` under the id `new_id` (in every table that names it)."""
    with sqlite3.connect(db) as con:
        con.execute("PRAGMA foreign_keys=OFF")
        [(old,)] = con.execute("SELECT id FROM means WHERE email = ?", (email,)).fetchall()
        for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            columns = {row[1] for row in con.execute(f"PRAGMA table_info({table})")}
            for column in ({"id"} if table == "means" else set()) | ({"means_id"} & columns):
                con.execute(f"UPDATE {table} SET {column} = ? WHERE {column} = ?", (new_id, old))


@pytest.mark.parametrize("means_id", ["a/b", "..", "."])
def test_a_means_id_no_url_path_can_name_is_one_line_before_anything_is_sent(tmp_path: Path, means_id: str) -> None:
    """The client refuses such an id in a path (`_segment`); read as it was, `plan` planned `change_role` on it and
    `apply` then stopped with an internal error after writing the step's intent. Now the read refuses it."""
    db, audit = tmp_path / "sb.db", tmp_path / "audit.jsonl"
    config = tmp_path / "org.yaml"
    config.write_text(CONFIG.replace("ROLE", "gebruiker"))
    code, _, _ = invoke("apply", str(config), "--backend", f"sandbox:{db}", "--auto-approve", "--audit-log", "-")
    assert code == 0
    _rename_means(db, "bob@acme.nl", means_id)
    config.write_text(CONFIG.replace("ROLE", "beheerder"))             # a change_role on bob's means
    for command in (["plan"], ["drift"], ["apply", "--auto-approve", "--audit-log", str(audit)]):
        code, out, err = invoke(command[0], str(config), "--backend", f"sandbox:{db}", *command[1:])
        assert code == 1, (command, out, err)
        [line] = err.splitlines()
        assert line.startswith("error: The backend sent a response the reconciler does not understand")
        assert repr(means_id) in line and "internal error" not in line and "Traceback" not in out + err
    steps = [json.loads(line) for line in audit.read_text().splitlines()] if audit.exists() else []
    assert not [s for s in steps if s.get("event") == "step-intent"]
