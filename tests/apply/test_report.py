"""reconciler.apply.report: the final report of an apply as the command prints it, and the job summary it
appends (issue 12: beneath the command line)."""

from __future__ import annotations

import json
from pathlib import Path

from reconciler.apply.report import NOTHING_TEXT, ApplyReport, append_summary, render_json, render_report, render_text


def test_an_apply_with_nothing_to_do_says_so_as_text_and_as_json() -> None:
    assert render_report(None, "text") == NOTHING_TEXT and NOTHING_TEXT.startswith("Nothing to apply: ")
    data = json.loads(render_report(None, "json"))
    assert data == {"ok": True, "summary": {"done": 0, "failed": 0, "skipped": 0}, "organisations": []}


def test_a_report_renders_as_text_or_json_and_in_colour_only_when_asked() -> None:
    report = ApplyReport("plan-1", [])
    assert render_report(report, "json") == render_json(report)
    assert render_report(report, "text") == render_text(report)
    assert "\x1b[" not in render_report(report, "text", colour=False)


def test_the_summary_is_appended_and_an_unwritable_file_is_a_warning(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    assert append_summary(summary, None) is None and append_summary(summary, None) is None
    assert summary.read_text(encoding="utf-8") == "**Nothing to apply**: the backend matches the config.\n" * 2
    warning = append_summary(tmp_path, None)                   # a folder cannot be appended to
    assert warning is not None and warning.startswith(f"cannot write the summary to {tmp_path}: ")
    assert "\n" not in warning
