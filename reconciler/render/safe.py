"""Text from a config or the backend made safe for where it is shown, in one place for every renderer.

A value can hold anything: a backend (or whoever wrote to it) controls names, e-mail addresses, messages; a
config is limited by its schema but still holds `<`, `|`, backticks and brackets. Each output gets one
function here, and every renderer uses it for every value it did not write itself:

- `terminal`: one line for a terminal. Control characters (C0, DEL, C1: ESC sequences that recolour,
  retitle, clear or move the cursor; BEL; CR that overwrites a line; NUL) and the bidi controls that
  reorder what a reviewer reads (U+202A..U+202E, U+2066..U+2069, U+200E/U+200F, U+061C), the invisible
  format characters that make two names look the same (zero-width spaces and joiners, soft hyphen, U+FEFF,
  tag characters) and lone surrogates (which no terminal can even be sent) become visible escapes such as
  `\\x1b`, `\\u202e` and `\\ud800`, never raw. Escaping rather than stripping shows a reviewer
  that something odd is there. A line break in a value is escaped too (`\\n`): only the renderer starts a
  line, so data cannot forge one.
- `rich_markup`: the same for text printed through rich, whose `[...]` markup is escaped as well.
- `md`, `md_line`, `md_html`: GitHub-flavoured markdown (the plan comment, the drift issue, the access
  report): nothing can end a table cell, start formatting, a link, a code span or an HTML tag or comment
  (`<!--`, `</details>`, `<script>`), @-mention someone, or hide text; a line break becomes `<br>`.
- `html_text`: text or an attribute value in an HTML page (a line feed stays: it is white space there).
- `json_text`: JSON whose strings hold none of these characters raw (json escapes C0 itself; the rest is
  written as `\\uXXXX`, which any JSON reader turns back into the same string).
- `csv_text`: a spreadsheet cell that is shown as text, never run as a formula (a line feed stays: the
  cell is quoted and reads back as it was).
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

#: Characters never shown raw: C0 controls, DEL, C1 controls, line and paragraph separators, and the bidi
#: embeddings, overrides, isolates and marks (Trojan Source, CVE-2021-42574).
UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2069"
                    "\ufeff\ud800-\udfff\U000e0000-\U000e007f]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


# ------------------------------------------------------------------------------------------------ terminal
def terminal(value: object) -> str:
    """`value` as text a terminal shows literally, on one line (controls and bidi controls as escapes)."""
    return UNSAFE.sub(_visible, str(value))


def terminal_lines(value: object) -> str:
    """Like `terminal`, but the line feeds stay: for a message the tool itself made of several lines (an
    error with one reason per line), where each quoted value has no line break of its own to add."""
    return "\n".join(terminal(line) for line in str(value).split("\n"))


def rich_markup(value: object) -> str:
    """`value` for rich's markup: terminal-safe, and `[...]` shown as written rather than read as style."""
    from rich.markup import escape

    return escape(terminal(value))


# ------------------------------------------------------------------------------------------------ markdown
#: Long texts in one cell are shortened (the JSON output has them in full).
MAX_TEXT = 1_000
# Inline markdown that could format text, make a link or code span, end a table cell or start math.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~$])")
# What would start a block (heading, list, thematic break) at the start of a list item's text.
_BLOCK_START = re.compile(r"^(?:([#=+-])|(\d{1,9})([.)]))")
# An @ that GitHub would read as a mention of a user or team (not the @ inside an e-mail address).
_MENTION = re.compile(r"(?<![\w.+-])@(?=[A-Za-z0-9])")
_NEWLINES = re.compile(r"\r\n|\r|\n|\u2028|\u2029")
_ZERO_WIDTH_SPACE = "\u200b"
# What GitHub turns into a link by itself (its autolink extension): `scheme://` and `www.`; a zero-width
# space before the last character keeps the text and breaks the link, as for @-mentions.
_AUTOLINK = re.compile(r"(?i)\b(?:https?|ftp|mailto|xmpp):/?/?|\bwww\.")


def _md_clean(value: object) -> str:
    """Line breaks kept (each caller decides what they become); every other unsafe character escaped; `&`,
    `<` and `>` as entities (no HTML tag or comment can open); no @-mention."""
    text = str(value)
    text = text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "\u2026"
    text = "\n".join(terminal(part) for part in _NEWLINES.split(text))
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _AUTOLINK.sub(lambda m: m.group()[:-1] + _ZERO_WIDTH_SPACE + m.group()[-1], text)
    return _MENTION.sub("@" + _ZERO_WIDTH_SPACE, text)


def md(value: object) -> str:
    """`value` as inline markdown that renders literally, on one line: safe in a table cell or a heading."""
    return _MD_SPECIAL.sub(r"\\\1", _md_clean(value)).replace("\n", "<br>")


def md_line(value: object) -> str:
    """`value` as the text of a list item (`- ...`): also no heading, nested list or rule at its start."""
    return _BLOCK_START.sub(_escape_block_start, md(value).lstrip())


def _escape_block_start(match: re.Match[str]) -> str:
    marker, number, delimiter = match.groups()
    return "\\" + marker if marker else number + "\\" + delimiter


def md_html(value: object) -> str:
    """`value` as text inside raw HTML in markdown (a `<summary>` line, where markdown is not parsed; the
    brackets as entities all the same, so no renderer can read a link into it)."""
    text = _md_clean(value).replace('"', "&quot;").replace("[", "&#91;").replace("]", "&#93;")
    return text.replace("\n", " ")


# ---------------------------------------------------------------------------------------------------- html
def html_text(value: object) -> str:
    """`value` as HTML text or a quoted attribute value; controls and bidi controls shown as escapes (a line
    feed stays: in HTML it is only white space, and the value reads back as it was)."""
    return html.escape(terminal_lines(value), quote=True)


# ---------------------------------------------------------------------------------------------------- json
# What json.dumps(ensure_ascii=False) leaves raw and a terminal or an editor would act on (it escapes C0).
_JSON_RAW = re.compile("[\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2069"
                       "\ufeff\ud800-\udfff\U000e0000-\U000e007f]")


def json_safe(text: str) -> str:
    """JSON text (from json.dumps) with DEL, C1 and bidi controls written as `\\uXXXX`: the same JSON value.
    Outside strings JSON has only ASCII, so each such character is inside a string, where the escape is valid."""
    return _JSON_RAW.sub(_json_escape, text)


def _json_escape(match: re.Match[str]) -> str:
    """`\\uXXXX`, or the surrogate pair JSON writes for a character beyond the basic plane (tag characters)."""
    code = ord(match.group())
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xd800 + (code >> 10):04x}\\u{0xdc00 + (code & 0x3ff):04x}"


def json_text(data: Any, **options: Any) -> str:
    """`json.dumps(data, ensure_ascii=False, **options)`, readable (é stays é) and without raw controls."""
    return json_safe(json.dumps(data, ensure_ascii=False, **options))


# ----------------------------------------------------------------------------------------------------- csv
# A spreadsheet runs a cell that starts with one of these as a formula (csv injection, OWASP).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def csv_text(value: str) -> str:
    """A text cell that a spreadsheet shows as text and never evaluates: controls as escapes (the file is also
    shown in terminals: no ESC, no CR to overwrite a line), a line feed kept (the csv writer quotes the cell, and
    a spreadsheet reads the value back as it was), and a formula's first character (also after leading spaces,
    which some spreadsheets skip) behind a `'`."""
    text = terminal_lines(value)
    return "'" + text if text.lstrip(" ").startswith(_FORMULA_START) else text
