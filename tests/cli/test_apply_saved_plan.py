"""`reconciler apply --plan` applies only the plan that review saw (issue #10, item 1).

Each kind of tampering found on main (an injected request, a change_role turned into beheerder under a text
that still says gebruiker, a retargeted chain authorisation, a swapped KvK, a raised removal limit) and two
more (a reordered item list, a changed `params` dict) is refused with exit 1, says what differs, and leaves the
backend's revision as it was. The optional HMAC signature (RECONCILER_PLAN_KEY) is required when the key is set.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest

from reconciler.apply.signature import KEY_ENV
from tests.cli.test_apply_cli import ADMIN, HEAD, Repo, invoke, users

KEY = "k3y-for-the-plan-job-0123456789"
CHAIN = ('chain_authorisations:\n  - intermediary: {kvk: "47474747", name: Accountants Vries}\n'
         "    services: [rvo/tenderned]\n    until: 2029-10-14\n")
PROMOTED = "  - {email: u0@acme.nl, name: U0, role: beheerder, level: EH3, second_factor: {type: otp}}\n"
DEMOTED = "  - {email: u0@acme.nl, name: U0, role: gebruiker, level: EH3, second_factor: {type: otp}}\n"


def revision(repo: Repo, config: str, kvk: str = "12345678") -> int:
    code, out, _ = repo.run("plan", config, "--format", "json")
    assert code in (0, 2)
    return next(o["revision"] for o in json.loads(out)["organisations"] if o["kvk"] == kvk)


def saved(repo: Repo, config: str) -> Path:
    plan_file = repo.tmp / "plan.json"
    assert repo.run("plan", config, "--out", str(plan_file))[0] == 2
    return plan_file


def edit(plan_file: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = json.loads(plan_file.read_text())
    change(data)
    plan_file.write_text(json.dumps(data, indent=2))


def changes(data: dict[str, Any], kvk: str = "12345678") -> list[dict[str, Any]]:
    return next(o for o in data["organisations"] if o["kvk"] == kvk)["changes"]


def refused(repo: Repo, plan_file: Path, config: str, *expected: str, extra: tuple[str, ...] = ()) -> str:
    """Apply the edited plan: exit 1, nothing sent (the revision is unchanged), the message says what differs."""
    before = revision(repo, config)
    logged = repo.audit.read_text() if repo.audit.exists() else ""
    code, out, err = repo.apply("--plan", str(plan_file), config, *extra)
    assert code == 1, out + err
    assert "nothing was changed" in err and "Traceback" not in err and "internal error" not in err
    for text in expected:
        assert text in err, err
    assert revision(repo, config) == before
    assert "step-intent" not in (repo.audit.read_text() if repo.audit.exists() else "")[len(logged):]
    return err


# ------------------------------------------------------------------------------- the seven tamperings
def test_an_injected_request_for_an_outsider_is_refused(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    config = repo.config(HEAD + "users:\n" + ADMIN + users(1))
    plan_file = saved(repo, config)

    def inject(data: dict[str, Any]) -> None:
        step = dict(changes(data)[0])
        step.update(id="00000000deadbeef", target="outsider@evil.example", person="outsider@evil.example",
                    params={**step["params"], "email": "outsider@evil.example", "role": "beheerder"})
        changes(data).append(step)

    edit(plan_file, inject)
    refused(repo, plan_file, config, "edited after it was made",
            "changes: request_means outsider@evil.example (step 00000000deadbeef) is in the file, but not in the "
            "plan derived from the config")


def test_a_demotion_turned_into_a_promotion_under_the_old_text_is_refused(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    assert repo.apply(repo.config(HEAD + "users:\n" + ADMIN + PROMOTED))[0] == 0
    repo.settle()
    config = repo.config(HEAD + "users:\n" + ADMIN + DEMOTED)
    plan_file = saved(repo, config)

    def promote(data: dict[str, Any]) -> None:
        step = next(c for c in changes(data) if c["action"] == "change_role")
        assert step["params"]["role"] == "gebruiker" and "gebruiker" in step["detail"]
        step["params"]["role"] = "beheerder"              # the text a reviewer reads still says gebruiker

    edit(plan_file, promote)
    refused(repo, plan_file, config, 'params is {"means_id"', '"role": "beheerder"', '"role": "gebruiker"')


def test_a_chain_authorisation_retargeted_to_another_kvk_is_refused(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    config = repo.config(HEAD + "users:\n" + ADMIN + CHAIN)
    plan_file = saved(repo, config)

    def retarget(data: dict[str, Any]) -> None:
        step = next(c for c in changes(data) if c["action"] == "issue_chain")
        step["target"] = "66666666"
        step["params"] = json.loads(json.dumps(step["params"]).replace("47474747", "66666666"))

    edit(plan_file, retarget)
    err = refused(repo, plan_file, config, "issue_chain 47474747")
    assert "66666666" in err


def test_a_swapped_kvk_is_refused(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    other = repo.config('version: 1\norganisation: {kvk: "87654321", name: Other}\nusers:\n' + ADMIN, "other.yaml")
    assert repo.run("plan", other)[0] in (0, 2)             # the other organisation exists in the backend
    config = repo.config(HEAD + "users:\n" + ADMIN + users(1))
    plan_file = saved(repo, config)
    before_other = revision(repo, other, "87654321")
    edit(plan_file, lambda data: data["organisations"][0].update(kvk="87654321"))
    refused(repo, plan_file, config, "organisation 87654321 is in the file, but the config does not plan it",
            "organisation 12345678 is planned by the config, but missing from the file")
    assert revision(repo, other, "87654321") == before_other


def test_a_raised_removal_limit_does_not_bypass_force(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    assert repo.apply(repo.config(HEAD + "users:\n" + ADMIN + users(6)))[0] == 0
    repo.settle()
    config = repo.config(HEAD + "policy: {prune: true, max_removals: 2}\nusers:\n" + ADMIN + users(1))
    plan_file = saved(repo, config)

    def raise_limit(data: dict[str, Any]) -> None:
        org = data["organisations"][0]
        assert org["removals"]["over_threshold"] and data["force_required"]
        org["removals"].update(limit=100, over_threshold=False)
        data["force_required"] = False

    edit(plan_file, raise_limit)
    refused(repo, plan_file, config, "force_required: false in the file, true derived from the config",
            '"limit": 100')


def test_a_reordered_item_list_is_refused(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    config = repo.config(HEAD + "users:\n" + ADMIN + users(3))
    plan_file = saved(repo, config)
    edit(plan_file, lambda data: changes(data).reverse())
    refused(repo, plan_file, config, "the steps are in another order than planned (from step 1")


def test_a_changed_params_dict_is_refused(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    config = repo.config(HEAD + "users:\n" + ADMIN + users(1))
    plan_file = saved(repo, config)
    edit(plan_file, lambda data: changes(data)[0]["params"].update(level="EH4", subscription="3y"))
    refused(repo, plan_file, config, "changes: request_means u0@acme.nl", '"level": "EH4"')


# ------------------------------------------------------------------------------ what is not tampering
def test_the_untouched_plan_applies_and_labels_and_layout_do_not_matter(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    config = repo.config(HEAD + "users:\n" + ADMIN + users(2))
    plan_file = saved(repo, config)
    data = json.loads(plan_file.read_text())
    changes(data)[0]["origin"] = "drift"                     # a --compare-to label decides nothing that runs
    plan_file.write_text(json.dumps(data))                   # nor does the file's layout
    code, out, err = repo.apply("--plan", str(plan_file), config)
    assert code == 0 and "Apply: 2 done" in out, err
    assert repo.run("plan", config)[0] == 0


def test_the_config_is_found_at_the_recorded_paths_or_given_again(tmp_path: Path, monkeypatch: Any) -> None:
    repo = Repo(tmp_path)
    monkeypatch.chdir(tmp_path)
    repo.config(HEAD + "users:\n" + ADMIN + users(1))
    assert repo.run("plan", "org.yaml", "--out", "plan.json")[0] == 2
    assert json.loads(Path("plan.json").read_text())["config_paths"] == ["org.yaml"]
    elsewhere = tmp_path / "sub"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, _, err = repo.apply("--plan", "../plan.json")
    assert code == 1 and "the config the plan was made from is not at org.yaml" in err
    code, out, err = repo.apply("--plan", "../plan.json", "../org.yaml")
    assert code == 0 and "Apply: 1 done" in out, err


def test_a_config_changed_since_the_plan_is_refused(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    config = repo.config(HEAD + "users:\n" + ADMIN + users(1))
    plan_file = saved(repo, config)
    repo.config(HEAD + "users:\n" + ADMIN + users(2))      # the pull request moved on after review
    err = refused(repo, plan_file, config, "is not the config the plan was made from (config digest sha256:")
    assert "check out the commit the plan was made from" in err


def test_a_plan_without_recorded_paths_needs_the_config(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    config = repo.config(HEAD + "users:\n" + ADMIN + users(1))
    plan_file = saved(repo, config)
    edit(plan_file, lambda data: data.pop("config_paths"))
    code, _, err = repo.apply("--plan", str(plan_file))
    assert code == 1 and "the plan does not say which config it was made from" in err
    code, out, _ = repo.apply("--plan", str(plan_file), config)
    assert code == 0 and "Apply: 1 done" in out


# ------------------------------------------------------------------------------------ the signature
def test_with_the_key_set_only_a_plan_signed_with_it_is_applied(tmp_path: Path, monkeypatch: Any) -> None:
    repo = Repo(tmp_path)
    config = repo.config(HEAD + "users:\n" + ADMIN + users(1))
    plan_file = saved(repo, config)                          # made without the key: no signature
    monkeypatch.setenv(KEY_ENV, KEY)
    err = refused(repo, plan_file, config, "the plan has no signature")
    assert KEY not in err
    plan_file = saved(repo, config)                          # made with the key: plan.json.sig beside it
    sig = plan_file.with_name("plan.json.sig")
    assert sig.read_text().startswith("hmac-sha256:") and KEY not in sig.read_text()
    monkeypatch.setenv(KEY_ENV, KEY + "-another")
    err = refused(repo, plan_file, config, "signature", "does not match")
    assert KEY not in err
    monkeypatch.setenv(KEY_ENV, KEY)
    code, out, err = repo.apply("--plan", str(plan_file), config)
    assert code == 0 and "Apply: 1 done" in out, err


def test_a_signed_plan_edited_and_re_signed_without_the_key_is_refused(tmp_path: Path, monkeypatch: Any) -> None:
    repo = Repo(tmp_path)
    monkeypatch.setenv(KEY_ENV, KEY)
    config = repo.config(HEAD + "users:\n" + ADMIN + users(1))
    plan_file = saved(repo, config)
    edit(plan_file, lambda data: data["warnings"].append("looks fine"))
    refused(repo, plan_file, config, "does not match: the plan was changed after it was signed")


@pytest.mark.parametrize(("key", "why"), [("short-SECRET", "is too short"),
                                         ("k3y-SECRET-abcdef\udcffghijklmnop", "is not UTF-8 text")],
                         ids=["short", "not-utf8"])
def test_an_unusable_key_is_refused_before_any_work_and_never_shown(tmp_path: Path, monkeypatch: Any, key: str,
                                                                    why: str) -> None:
    repo = Repo(tmp_path)
    monkeypatch.setenv(KEY_ENV, key)
    config = repo.config(HEAD + "users:\n" + ADMIN + users(1))
    code, out, err = repo.run("plan", config, "--out", str(tmp_path / "plan.json"))
    assert code == 1 and f"{KEY_ENV} {why}" in err and "SECRET" not in out + err
    assert not (tmp_path / "plan.json").exists()


@pytest.mark.parametrize("shard", ["1/2", "2/2"])
def test_a_sharded_plan_is_re_derived_for_its_shard(tmp_path: Path, shard: str) -> None:
    repo = Repo(tmp_path)
    (tmp_path / "config").mkdir()
    for kvk in ("12345678", "23456789", "34567890", "45678901"):
        (tmp_path / "config" / f"{kvk}.yaml").write_text(
            f'version: 1\norganisation: {{kvk: "{kvk}", name: Org {kvk}}}\nusers:\n' + ADMIN.replace("acme", kvk)
            + users(1).replace("acme", kvk))
    plan_file = tmp_path / "plan.json"
    code, _, _ = repo.run("plan", str(tmp_path / "config"), "--shard", shard, "--out", str(plan_file))
    data = json.loads(plan_file.read_text())
    assert data["shard"] == shard
    config = str(tmp_path / "config")
    if code == 0:                                            # an empty shard: nothing to apply, still accepted
        assert repo.apply("--plan", str(plan_file), config)[0] == 0
        return
    code, out, err = repo.apply("--plan", str(plan_file), config)
    assert code == 0 and f"Apply: {len(data['organisations'])} done" in out, err


# -------------------------------------------------------------- what a plan file may point the apply at
def test_recorded_paths_outside_the_working_directory_are_not_followed(tmp_path: Path, monkeypatch: Any) -> None:
    repo = Repo(tmp_path)
    config = repo.config(HEAD + "users:\n" + ADMIN + users(1))
    plan_file = saved(repo, config)                          # recorded as an absolute path
    code, _, err = repo.apply("--plan", str(plan_file))
    assert code == 1 and "outside the working directory; give the config" in err
    monkeypatch.chdir(tmp_path)
    for recorded in (["../org.yaml"], ["sub/../../x.yaml"]):
        edit(plan_file, lambda data: data.update(config_paths=recorded))
        code, _, err = repo.apply("--plan", str(plan_file))
        assert code == 1 and "outside the working directory" in err


def test_a_recorded_path_to_a_secret_file_is_never_quoted(tmp_path: Path, monkeypatch: Any) -> None:
    repo = Repo(tmp_path)
    monkeypatch.chdir(tmp_path)
    repo.config(HEAD + "users:\n" + ADMIN + users(1))
    assert repo.run("plan", "org.yaml", "--out", "plan.json")[0] == 2
    Path("secrets.yaml").write_text("version: ghp_SECRETVALUE1\norganisation: {kvk: tok-SECRET-42}\n")
    edit(Path("plan.json"), lambda data: data.update(config_paths=["secrets.yaml"]))
    code, out, err = repo.apply("--plan", "plan.json")
    assert code == 1 and "the config recorded in the plan (secrets.yaml) is not valid" in err
    assert "SECRET" not in out + err


def test_a_recorded_path_that_is_a_pipe_is_refused_without_reading(tmp_path: Path, monkeypatch: Any) -> None:
    import os

    repo = Repo(tmp_path)
    monkeypatch.chdir(tmp_path)
    repo.config(HEAD + "users:\n" + ADMIN + users(1))
    assert repo.run("plan", "org.yaml", "--out", "plan.json")[0] == 2
    os.mkfifo("pipe.yaml")
    edit(Path("plan.json"), lambda data: data.update(config_paths=["pipe.yaml"]))
    code, _, err = repo.apply("--plan", "plan.json")
    assert code == 1 and "pipe.yaml, which is not a file or a folder" in err


def test_a_plan_for_another_backend_sets_nothing_up_there(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    config = repo.config(HEAD + "users:\n" + ADMIN + users(1))
    plan_file = saved(repo, config)
    other = tmp_path / "other.db"
    code, _, err = invoke("apply", "--plan", str(plan_file), config, "--backend", f"sandbox:{other}",
                          "--auto-approve")
    assert code == 1 and "the plan was made against sandbox:" in err
    assert not other.exists()


def test_a_duplicated_organisation_and_a_retyped_number_are_differences(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    config = repo.config(HEAD + "users:\n" + ADMIN + users(1))
    plan_file = saved(repo, config)
    edit(plan_file, lambda data: data["organisations"].insert(0, {**data["organisations"][0], "name": "EVIL"}))
    refused(repo, plan_file, config, "organisation 12345678 is in the file more than once")
    plan_file = saved(repo, config)
    edit(plan_file, lambda data: data["organisations"][0].update(revision=float(data["organisations"][0]["revision"])))
    refused(repo, plan_file, config, "revision: 1.0 in the file, 1 derived from the config")


@pytest.mark.parametrize("shard", ["5/2"])
def test_a_shard_the_schema_admits_but_that_is_no_shard_is_refused(tmp_path: Path, shard: str) -> None:
    repo = Repo(tmp_path)
    config = repo.config(HEAD + "users:\n" + ADMIN + users(1))
    plan_file = saved(repo, config)
    edit(plan_file, lambda data: data.update(shard=shard))
    refused(repo, plan_file, config, "not a valid plan: shard")


def test_a_plan_that_is_a_device_or_a_signature_that_is_one_is_refused(tmp_path: Path, monkeypatch: Any) -> None:
    repo = Repo(tmp_path)
    config = repo.config(HEAD + "users:\n" + ADMIN + users(1))
    code, _, err = repo.apply("--plan", "/dev/zero", config)
    assert code == 1 and "/dev/zero: not a plan file (not a regular file)" in err
    plan_file = saved(repo, config)
    plan_file.with_name("plan.json.sig").symlink_to("/dev/zero")
    monkeypatch.setenv(KEY_ENV, KEY)
    refused(repo, plan_file, config, "signature")


def test_a_signature_that_cannot_be_written_leaves_no_unsigned_plan(tmp_path: Path, monkeypatch: Any) -> None:
    repo = Repo(tmp_path)
    monkeypatch.setenv(KEY_ENV, KEY)
    config = repo.config(HEAD + "users:\n" + ADMIN + users(1))
    (tmp_path / "plan.json.sig").mkdir()
    code, _, err = repo.run("plan", config, "--out", str(tmp_path / "plan.json"))
    assert code == 1 and "plan.json.sig" in err and "internal error" not in err
    assert not (tmp_path / "plan.json").exists()


def test_a_plan_with_rolling_end_dates_is_good_for_its_own_day_only(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    config = repo.config(HEAD + "users:\n" + ADMIN[:-2] + ", authorisations: [{service: rvo/tenderned, "
                         "until: rolling}]}\n")
    assert repo.run("sandbox", "clock", "set", "2026-12-01")[0] == 0
    plan_file = saved(repo, config)
    org = json.loads(plan_file.read_text())["organisations"][0]
    grant = next(c for c in org["changes"] if c["action"] == "grant")
    assert grant["params"]["end_date"] == "2031-12-01"
    assert org["valid_until"] == "2026-12-02" and "rolling end date" in org["valid_until_reason"]
    assert repo.run("sandbox", "clock", "set", "2026-12-02")[0] == 0      # a day later, or a replay
    refused(repo, plan_file, config, "the saved plan is stale", "on 2026-12-02")


@pytest.mark.parametrize("spelling, said", [("{n}e0", "revision: {n}.0 in the file"),
                                            ("{n}0e-1", "revision: {n}.0 in the file"),
                                            ("NaN", "not a valid plan"), ("Infinity", "not a valid plan"),
                                            ("-0.0", "changed since the plan was made (revision -0.0 then"),
                                            ("true", "not a valid plan")])
def test_a_revision_respelt_in_the_file_is_refused(tmp_path: Path, spelling: str, said: str) -> None:
    """The revision written as raw JSON text an editor might use (an exponent, NaN, Infinity, -0.0, a flag): a
    number Python calls equal still differs as JSON (issue #15: the fast comparison), the rest is not a plan."""
    import re

    repo = Repo(tmp_path)
    config = repo.config(HEAD + "users:\n" + ADMIN + users(1))
    plan_file = saved(repo, config)
    text = plan_file.read_text()
    n = revision(repo, config)
    edited, count = re.subn(rf'"revision": {n}\b', f'"revision": {spelling.format(n=n)}', text, count=1)
    assert count == 1
    plan_file.write_text(edited)
    refused(repo, plan_file, config, said.format(n=n))
