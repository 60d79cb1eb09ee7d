"""reconciler.config.yamlpos: safe YAML with 1-based positions, refusing what cannot be read safely."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from reconciler.config import yamlpos
from reconciler.config.yamlpos import Mark, YamlLoadError, decode, load_yaml

DOC = textwrap.dedent("""\
    version: 1
    organisation:
      kvk: "12345678"
      name: Acme
    users:
      - email: a@acme.nl
        groups: [finance, hr]
      -   email: b@acme.nl
    """)


def load_error(text: str) -> YamlLoadError:
    with pytest.raises(YamlLoadError) as info:
        load_yaml(text)
    return info.value


def decode_error(raw: bytes) -> YamlLoadError:
    with pytest.raises(YamlLoadError) as info:
        decode(raw)
    return info.value


# --- positions -----------------------------------------------------------------------------------------

class TestMark:
    def test_data_is_plain(self) -> None:
        doc = load_yaml(DOC)
        assert doc.data == {"version": 1, "organisation": {"kvk": "12345678", "name": "Acme"},
                            "users": [{"email": "a@acme.nl", "groups": ["finance", "hr"]},
                                      {"email": "b@acme.nl"}]}
        assert doc.problems == []

    @pytest.mark.parametrize(("path", "expected"), [
        ((), Mark(1, 1)),
        (("version",), Mark(1, 10)),
        (("organisation",), Mark(3, 3)),
        (("organisation", "kvk"), Mark(3, 8)),
        (("organisation", "name"), Mark(4, 9)),
        (("users", 0), Mark(6, 5)),
        (("users", 0, "email"), Mark(6, 12)),
        (("users", 0, "groups", 1), Mark(7, 23)),
        (("users", 1, "email"), Mark(8, 14)),
    ])
    def test_value_positions_are_one_based(self, path: tuple, expected: Mark) -> None:
        assert load_yaml(DOC).mark(path) == expected

    @pytest.mark.parametrize(("path", "expected"), [
        (("version",), Mark(1, 1)),
        (("organisation",), Mark(2, 1)),
        (("organisation", "kvk"), Mark(3, 3)),
        (("users", 0, "email"), Mark(6, 5)),
        (("users", 1, "email"), Mark(8, 7)),
        (("users", 0, "groups"), Mark(7, 5)),
    ])
    def test_key_positions(self, path: tuple, expected: Mark) -> None:
        assert load_yaml(DOC).mark(path, key=True) == expected

    def test_key_flag_only_applies_to_the_last_part(self) -> None:
        doc = load_yaml(DOC)
        # An index as the last part has no key: the item itself.
        assert doc.mark(("users", 1), key=True) == Mark(8, 7)
        assert doc.mark(("users", 0, "groups", 0), key=True) == Mark(7, 14)

    @pytest.mark.parametrize(("path", "expected"), [
        (("organisation", "branch_number"), Mark(3, 3)),   # missing key -> the mapping
        (("users", 5, "email"), Mark(6, 3)),                 # index out of range -> the list (its first dash)
        (("users", 0, "missing", "deeper"), Mark(6, 5)),     # -> users[0]
        (("version", "sub"), Mark(1, 10)),                   # a scalar has no children -> the scalar
        (("users", "email"), Mark(6, 3)),                    # a key into a list -> the list
        (("organisation", 0), Mark(3, 3)),                   # an index into a mapping -> the mapping
        (("nope",), Mark(1, 1)),                             # -> the root
    ])
    def test_nearest_existing_ancestor(self, path: tuple, expected: Mark) -> None:
        assert load_yaml(DOC).mark(path) == expected

    def test_missing_key_with_key_flag_falls_back_to_the_parent_value(self) -> None:
        assert load_yaml(DOC).mark(("organisation", "branch_number"), key=True) == Mark(3, 3)

    def test_empty_document_marks_line_one(self) -> None:
        doc = load_yaml("")
        assert doc.data is None and doc.root is None and doc.problems == []
        assert doc.mark(("users", 0)) == Mark(1, 1)

    def test_comment_only_document(self) -> None:
        doc = load_yaml("# nothing here\n# at all\n")
        assert doc.data is None
        assert doc.mark(()) == Mark(1, 1)

    def test_positions_after_a_bom(self) -> None:
        doc = load_yaml(decode("\ufeffversion: 1\nname: x\n".encode()))
        assert doc.data == {"version": 1, "name": "x"}
        assert doc.mark(("name",)) == Mark(2, 7)
        assert doc.mark(("version",), key=True) == Mark(1, 1)

    def test_flow_and_quoted_keys(self) -> None:
        doc = load_yaml('a: {"b": [1, {c: 2}]}\n')
        assert doc.mark(("a", "b", 1, "c")) == Mark(1, 18)
        assert doc.mark(("a", "b", 1, "c"), key=True) == Mark(1, 15)
        assert doc.mark(("a", "b"), key=True) == Mark(1, 5)

    def test_non_string_key_is_positioned_where_it_is_written(self) -> None:
        # Regression: keys that YAML 1.1 resolves to another type (on/yes/true/null/0x10) were converted with
        # str(), so `on:` became 'True'; mark() then compared the written text 'on' with 'True', found
        # nothing and fell back to the ancestor.
        doc = load_yaml("version: 1\non: push\n")
        assert doc.mark((next(k for k in doc.data if k != "version"),), key=True) == Mark(2, 1)


# --- duplicate keys, tags, merge keys, aliases ---------------------------------------------------------

class TestRefusals:
    def test_duplicate_key_reports_both_positions(self) -> None:
        doc = load_yaml("a: 1\nb:\n  c: 2\n  d: 3\n  c: 4\n")
        assert doc.data == {"a": 1, "b": {"c": 2, "d": 3}}  # the first value is kept
        [problem] = doc.problems
        assert problem.code == "duplicate-key"
        assert problem.mark == Mark(5, 3)
        assert "line 3, column 3" in problem.message
        assert "'c'" in problem.message

    def test_every_repeat_of_a_key_is_reported(self) -> None:
        doc = load_yaml("a: 1\na: 2\na: 3\n")
        assert [p.mark for p in doc.problems] == [Mark(2, 1), Mark(3, 1)]
        assert all("line 1, column 1" in p.message for p in doc.problems)

    def test_duplicate_key_after_entries_left_out_names_the_first(self) -> None:
        # The first occurrence is found again by walking the mapping's entries, past those left out (a merge
        # key, a complex key, a repeat) and past nested values: its position must be the key's own.
        text = "x: [1, {y: 2}]\n<<: {m: 1}\n? [k]\n: 1\nb:\n  - 1\nx: 9\nb: 2\nb: 3\n"
        doc = load_yaml(text)
        dups = [p for p in doc.problems if p.code == "duplicate-key"]
        assert [(p.mark, p.message.split(" (")[1].split(")")[0]) for p in dups] == [
            (Mark(7, 1), "first at line 1, column 1"), (Mark(8, 1), "first at line 5, column 1"),
            (Mark(9, 1), "first at line 5, column 1")]
        assert doc.data == {"x": [1, {"y": 2}], "b": [1]}

    def test_duplicate_key_value_is_still_checked(self) -> None:
        doc = load_yaml("a: 1\na: !custom x\n")
        assert [p.code for p in doc.problems] == ["duplicate-key", "yaml"]

    def test_python_tag_is_refused_and_never_run(self, tmp_path: Path) -> None:
        marker = tmp_path / "ran"
        doc = load_yaml(f"version: 1\nx: !!python/object/apply:os.system ['touch {marker}']\n")
        assert not marker.exists()
        [problem] = doc.problems
        assert problem.code == "yaml"
        assert problem.mark == Mark(2, 4)
        assert "!!python/object/apply:os.system" in problem.message
        assert "not allowed" in problem.message

    def test_custom_tag_is_refused(self) -> None:
        doc = load_yaml("a: 1\nb: !custom hello\n")
        assert doc.data["b"] == "hello"
        [problem] = doc.problems
        assert problem.mark == Mark(2, 4)
        assert "'!custom'" in problem.message

    @pytest.mark.parametrize("text", ["a: !!binary aGVsbG8=\n", "a: !!set {x}\n", "a: !!omap [b: 1]\n",
                                      "a: !!python/name:os.system\n", "a: !mapping {b: 1}\n"])
    def test_other_non_standard_tags_are_refused(self, text: str) -> None:
        doc = load_yaml(text)
        assert [p.mark for p in doc.problems] == [Mark(1, 4)]
        assert "not allowed" in doc.problems[0].message

    @pytest.mark.parametrize(("text", "value"), [("a: !!str 5\n", "5"), ("a: !!int '5'\n", 5),
                                                 ("a: !!timestamp 2020-01-01\n", "2020-01-01")])
    def test_standard_tags_are_accepted(self, text: str, value: object) -> None:
        doc = load_yaml(text)
        assert doc.problems == []
        assert doc.data == {"a": value}

    @pytest.mark.parametrize(("text", "words"), [
        ("a: !!bool Acme\n", "'!!bool' needs true or false, not 'Acme'"),
        ("a: !!int abc\n", "'!!int' needs a whole number, not 'abc'"),
        ("a: !!int\n", "'!!int' needs a whole number, not ''"),
        ("a: !!float x1\n", "'!!float' needs a number, not 'x1'"),
    ])
    def test_standard_tag_on_a_value_of_another_kind_is_a_positioned_problem(self, text: str, words: str) -> None:
        # Regression: PyYAML's constructors raise KeyError/IndexError/ValueError here, and `validate` said
        # "internal error"; `!!int abc` was called an integer too long.
        doc = load_yaml(text)
        [problem] = doc.problems
        assert (problem.code, problem.mark) == ("yaml", Mark(1, 4))
        assert words in problem.message and "remove the tag" in problem.message
        assert isinstance(doc.data["a"], str)

    def test_merge_key_is_refused(self) -> None:
        doc = load_yaml("base: &b {x: 1}\nc:\n  <<: *b\n  y: 2\n")
        [problem] = doc.problems
        assert problem.mark == Mark(3, 3)
        assert "merge keys (<<) are not supported" in problem.message
        assert doc.data["c"] == {"y": 2}  # nothing merged behind the user's back

    def test_complex_key_is_refused(self) -> None:
        doc = load_yaml("? [a, b]\n: 1\nc: 2\n")
        assert doc.data == {"c": 2}
        assert [p.mark for p in doc.problems] == [Mark(1, 3)]
        assert "plain value" in doc.problems[0].message

    def test_aliases_are_allowed(self) -> None:
        doc = load_yaml("a: &x [1, 2]\nb: *x\n")
        assert doc.problems == []
        assert doc.data == {"a": [1, 2], "b": [1, 2]}
        # An alias is the anchored node itself: its position is where the value is written out.
        assert doc.mark(("b",)) == Mark(1, 4)
        assert doc.mark(("b",), key=True) == Mark(2, 1)

    def test_undefined_alias_is_a_positioned_syntax_error(self) -> None:
        err = load_error("a: 1\nb: *nope\n")
        assert err.mark == Mark(2, 4)
        assert "alias" in err.message

    def test_alias_bomb_is_refused_quickly(self) -> None:
        lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
        for prev, name in zip("abcdefgh", "bcdefghi"):
            lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
        start = time.perf_counter()
        err = load_error("\n".join(lines) + "\n")
        elapsed = time.perf_counter() - start
        assert err.code == "yaml"
        assert "alias bomb" in err.message
        assert f"{yamlpos.MAX_NODES:,}" in err.message
        assert err.mark.line >= 1 and err.mark.column >= 1
        assert elapsed < 10, f"took {elapsed:.1f}s"

    def test_node_limit_counts_alias_expansion(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(yamlpos, "MAX_NODES", 50)
        text = "a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9]\nb: [*a, *a, *a, *a, *a]\n"
        assert "alias bomb" in load_error(text).message
        monkeypatch.setattr(yamlpos, "MAX_NODES", 100)
        assert load_yaml(text).data["b"][4] == list(range(1, 10))


# --- structure limits and documents --------------------------------------------------------------------

class TestLimits:
    def test_nesting_too_deep(self) -> None:
        depth = yamlpos.MAX_DEPTH + 5
        err = load_error("a: " + "[" * depth + "]" * depth + "\n")
        assert err.code == "yaml"
        assert f"nesting deeper than {yamlpos.MAX_DEPTH} levels" in err.message
        assert err.mark.line == 1 and err.mark.column > 3

    def test_nesting_at_the_limit_is_fine(self) -> None:
        depth = yamlpos.MAX_DEPTH - 1  # the root mapping is level 0, `a`'s value level 1
        doc = load_yaml("a: " + "[" * depth + "]" * depth + "\n")
        assert doc.problems == []

    def test_block_nesting_too_deep_is_positioned(self) -> None:
        text = "".join("  " * i + f"k{i}:\n" for i in range(100))
        err = load_error(text)
        assert "nesting deeper" in err.message
        assert 60 <= err.mark.line <= 70

    @pytest.mark.parametrize("expr", [
        "'a: ' + '[' * n + ']' * n",            # flow sequences
        "'a: ' + '{b: ' * n + '}' * n",         # flow mappings
        "'a:\\n' + '- ' * n + 'x\\n'",          # compact block sequences: `- - - - x` on one line
    ], ids=["flow-seq", "flow-map", "block-seq"])
    def test_very_deep_nesting_does_not_crash_the_process(self, expr: str) -> None:
        # libyaml composes nested collections recursively: ~30,000 levels (a 60-200 KB file) overflow the C
        # stack and the interpreter dies with SIGSEGV, before the converter's depth check ever runs.
        # Regression (block-seq): a guard that counted only brackets let a line of 100,000 compact block
        # sequence entries (`- - - ... x`) through to the crash.
        # Whichever limit answers first (ours at MAX_DEPTH, or libyaml's own since PyYAML 6.0.2, which raised a
        # "YAML syntax" error), the outcome is the same: a positioned nesting error, and the process lives.
        code = ("from reconciler.config.yamlpos import load_yaml, YamlLoadError\n"
                "n = 100_000\n"
                "try:\n"
                f"    load_yaml({expr})\n"
                "    print('accepted')\n"
                "except YamlLoadError as exc:\n"
                "    print('refused', exc.code, exc.mark.line, exc.mark.column, exc.message, sep='|')\n")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"process died with return code {proc.returncode}"
        verdict, code_, line, column, message = proc.stdout.strip().split("|")
        assert (verdict, code_) == ("refused", "yaml")
        assert int(line) == (2 if expr.startswith("'a:\\n'") else 1) and int(column) > 3
        assert message == f"nesting deeper than {yamlpos.MAX_DEPTH} levels"

    def test_the_parsers_own_nesting_limit_is_the_same_positioned_error(self,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
        # PyYAML >= 6.0.2 has libyaml refuse 1,000 levels itself, as a scanner error; older ones do not. Either
        # way the result must be our positioned nesting error, not "YAML syntax: exceeded maximum nesting depth".
        import yaml

        def parse(text: str, Loader: object) -> object:
            yield yaml.StreamStartEvent()
            raise yaml.scanner.ScannerError("while increasing flow level", yaml.Mark("", 0, 0, 1003, None, None),
                                            "exceeded maximum nesting depth", yaml.Mark("", 0, 0, 1003, None, None))

        monkeypatch.setattr(yamlpos.yaml, "parse", parse)
        err = load_error("a: [[[]]]\n")
        assert (err.code, err.mark) == ("yaml", Mark(1, 1004))
        assert err.message == f"nesting deeper than {yamlpos.MAX_DEPTH} levels"

    @pytest.mark.parametrize("text", [
        "a: 1  # " + "[" * 70 + "\n",
        "a: 1  # " + "- " * 40 + "\n",           # the quick scan is fooled; the exact count is not
        'a: "' + "{" * 70 + '"\n',
        "a: |\n  " + "[" * 70 + "\n",
    ], ids=["comment", "comment-dashes", "quoted", "block-scalar"])
    def test_brackets_that_are_text_are_not_nesting(self, text: str) -> None:
        # Regression: a guard that counted every bracket in the file (comments, quoted strings and block
        # scalars too) refused a valid file with 65+ opening brackets in a comment or a description.
        assert load_yaml(text).data["a"] in (1, "{" * 70, "[" * 70 + "\n")

    def test_multiple_documents_are_refused_at_the_second(self) -> None:
        err = load_error("version: 1\n---\nversion: 2\n")
        assert err.mark == Mark(3, 1)
        assert "more than one YAML document" in err.message

    def test_explicit_single_document_is_fine(self) -> None:
        doc = load_yaml("---\nversion: 1\n...\n")
        assert doc.data == {"version": 1}
        assert doc.mark(("version",)) == Mark(2, 10)

    def test_syntax_error_is_positioned(self) -> None:
        err = load_error("a: 1\nb: [1, 2\nc: 3\n")
        assert err.code == "yaml"
        assert err.message.startswith("YAML syntax:")
        assert err.mark.line >= 2

    def test_bad_indentation_is_positioned(self) -> None:
        err = load_error("a:\n  b: 1\n c: 2\n")
        assert err.mark == Mark(3, 2)

    def test_control_character_is_positioned(self) -> None:
        # Regression: reader errors (control characters) were reported at 1:1 although the error knows the
        # offset: here line 2, column 5.
        err = load_error("a: 1\nb: x\x07y\n")
        assert "control characters" in err.message
        assert err.mark == Mark(2, 5)


# --- bytes to text -------------------------------------------------------------------------------------

class TestDecode:
    def test_utf8(self) -> None:
        assert decode("naam: Zoë\n".encode()) == "naam: Zoë\n"

    def test_bom_is_dropped(self) -> None:
        assert decode(b"\xef\xbb\xbfversion: 1\n") == "version: 1\n"

    def test_non_utf8_byte_is_positioned(self) -> None:
        err = decode_error(b"version: 1\nname: caf\xe9\n")
        assert err.code == "yaml"
        assert err.mark == Mark(2, 10)
        assert "not UTF-8" in err.message

    def test_non_utf8_byte_column_counts_characters(self) -> None:
        # Bug: the column of a bad byte is counted in bytes, every other column (YAML marks, NUL bytes,
        # control characters) in characters: after the two-byte "ë" the Latin-1 "é" is character 14 of
        # its line, reported as column 15.
        err = decode_error("naam: Zoë caf".encode() + b"\xe9\n")
        assert err.mark == Mark(1, 14)

    def test_non_utf8_first_byte(self) -> None:
        assert decode_error(b"\xff\xfev\x00").mark == Mark(1, 1)

    def test_non_utf8_after_bom_counts_from_the_text(self) -> None:
        assert decode_error(b"\xef\xbb\xbfa: caf\xe9\n").mark == Mark(1, 7)

    def test_utf16_file_is_refused(self) -> None:
        err = decode_error("version: 1\n".encode("utf-16"))
        assert "not UTF-8" in err.message or "NUL" in err.message

    def test_nul_byte_is_positioned(self) -> None:
        err = decode_error(b"version: 1\nname: ab\x00cd\n")
        assert err.mark == Mark(2, 9)
        assert "NUL" in err.message

    @pytest.mark.parametrize("char", ["\x85", "\u2028", "\u2029"])
    def test_invisible_line_breaks_are_refused_with_their_position(self, char: str) -> None:
        # YAML counts these as line breaks and editors do not: every later position would be off.
        err = decode_error(f"version: 1\nname: a{char}b\n".encode())
        assert err.code == "yaml"
        assert err.mark == Mark(2, 8)
        assert f"U+{ord(char):04X}" in err.message

    def test_size_limit(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(yamlpos, "MAX_BYTES", 20)
        assert decode(b"a" * 20) == "a" * 20
        err = decode_error(b"a" * 21)
        assert err.mark == Mark(1, 1)
        assert "larger than 20 bytes" in err.message and "at most 20" in err.message

    def test_default_size_limit_is_generous(self) -> None:
        assert yamlpos.MAX_BYTES >= 1024 * 1024


# --- scalars -------------------------------------------------------------------------------------------

class TestScalars:
    def test_dates_stay_strings(self) -> None:
        doc = load_yaml("a: 2027-02-14\nb: 2027-02-14T10:00:00Z\nc: 2027-2-3\n")
        assert doc.data == {"a": "2027-02-14", "b": "2027-02-14T10:00:00Z", "c": "2027-2-3"}
        assert all(isinstance(v, str) for v in doc.data.values())

    @pytest.mark.parametrize(("word", "value"), [
        ("yes", True), ("Yes", True), ("on", True), ("ON", True), ("true", True), ("y_not", "y_not"),
        ("no", False), ("off", False), ("False", False), ("n", "n"), ("y", "y"),
    ])
    def test_yaml11_booleans(self, word: str, value: object) -> None:
        assert load_yaml(f"a: {word}\n").data == {"a": value}

    def test_numbers_and_null(self) -> None:
        doc = load_yaml("a: 12\nb: 1.5\nc: ~\nd: null\ne:\nf: 0x1F\ng: '12'\nh: 1_000\n")
        assert doc.data == {"a": 12, "b": 1.5, "c": None, "d": None, "e": None, "f": 31, "g": "12", "h": 1000}

    def test_unquoted_leading_zero_is_yaml11_octal(self) -> None:
        # Why KvK numbers must be quoted: 01234567 is an octal integer in YAML 1.1.
        assert load_yaml("kvk: 01234567\n").data == {"kvk": 0o1234567}
        assert load_yaml('kvk: "01234567"\n').data == {"kvk": "01234567"}

    def test_non_string_keys_become_strings(self) -> None:
        doc = load_yaml("1: a\n2.5: b\n")
        assert doc.data == {"1": "a", "2.5": "b"}
        assert doc.mark(("1",), key=True) == Mark(1, 1)
        assert doc.mark(("2.5",)) == Mark(2, 6)
