"""Read keepalived.conf into a tree of statements, keeping file:line for every one.

This module owns the *syntax* of keepalived's configuration language and nothing of
its meaning (that is `translate.py`). Rules it keeps:

1. It reads files only through an injected `FileSource`, so tests feed it text and
   the default source is the filesystem.
2. Every statement remembers where it came from (`Location`), because every warning
   the importer prints must say `file:line` (issue 8: never drop anything silently).

The language, as keepalived's `lib/parser.c` reads it:

- A line is split into words on blanks; `"..."` is one word without its quotes.
- `#` and `!` start a comment anywhere outside quotes; `\\#` and `\\!` are literal.
- `{` and `}` outside quotes are words of their own; a block may open on the
  keyword's line or on the next line, and may close on the same line
  (`track_script { chk_foo }`).
- `include PATTERN` (exactly two words) is replaced by the files the glob matches,
  in sorted order; a relative pattern is relative to the including file's directory
  (keepalived chdir()s there while reading the file).
- `@ID line` is used only when keepalived runs with `-i ID`; `@^ID line` only when it
  does not. The importer is told the id (default: none, as keepalived without `-i`).
- `$NAME=value` defines a parameter; `$NAME` and `${NAME}` are replaced by it.
  Multi-line definitions and `~SEQ` loops are refused with a clear error: expand them
  by hand (the importer would otherwise guess at generated servers).
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

__all__ = [
    "FileSource",
    "FilesystemSource",
    "KeepalivedSyntaxError",
    "Location",
    "ParsedConfig",
    "Skipped",
    "Statement",
    "parse_file",
    "parse_text",
]

# keepalived nests includes without a limit; a cycle would never end, so we stop at a
# depth no sane configuration reaches.
MAX_INCLUDE_DEPTH = 32

#: A line may grow to this many characters by `$` substitution (keepalived's own
#: MAXBUF for a line is 1024; generous for long lists of addresses).
MAX_SUBSTITUTED_LINE = 65536
_DEFINITION = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")
_CONDITION = re.compile(r"^@(\^?)(\S+)\s+(\S.*)$")
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True, slots=True)
class Location:
    """Where a statement starts: the file as named to the parser, and its 1-based line."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class Statement:
    """One keyword line: `keyword args... [{ block }]`.

    `block` is None when the statement has no braces and an empty tuple for `{ }`.
    Value lists such as `virtual_ipaddress` entries are statements too: their first
    word is the `keyword` (an address) and the rest are `args`.
    """

    keyword: str
    args: tuple[str, ...]
    location: Location
    block: tuple[Statement, ...] | None = None
    #: The source's comments that attach to this statement: whole-line comments just
    #: above it and a comment at the end of its line, without the `#`/`!`.
    comments: tuple[str, ...] = ()

    def children(self, keyword: str) -> tuple[Statement, ...]:
        """The statements of this block named `keyword`, in file order."""
        return tuple(s for s in (self.block or ()) if s.keyword == keyword)

    def child(self, keyword: str) -> Statement | None:
        """The last statement named `keyword` (keepalived: a later value overrides)."""
        found = self.children(keyword)
        return found[-1] if found else None

    @property
    def words(self) -> tuple[str, ...]:
        return (self.keyword, *self.args)


@dataclass(frozen=True, slots=True)
class Skipped:
    """A line the parser did not use, and why: it becomes a warning of the importer."""

    location: Location
    text: str
    reason: str


@dataclass(frozen=True, slots=True)
class ParsedConfig:
    statements: tuple[Statement, ...]
    files: tuple[str, ...]
    skipped: tuple[Skipped, ...] = ()
    #: Globbing includes that matched nothing (legal: an empty conf.d), to be noted.
    empty_includes: tuple[Skipped, ...] = ()


class KeepalivedSyntaxError(Exception):
    """The input is not keepalived syntax we can read (the operator's file, not our bug)."""

    def __init__(self, location: Location, message: str) -> None:
        super().__init__(f"{location}: {message}")
        self.location = location
        self.message = message


class FileSource(Protocol):
    """How the parser reaches files; the filesystem in production, a dict in tests."""

    def read(self, path: str) -> str: ...

    def expand(self, pattern: str) -> list[str]:
        """The paths a glob pattern matches, sorted (glob(3) sorts, keepalived relies on it)."""
        ...


class FilesystemSource:
    """Files on disk. Directories and executable files are skipped as keepalived does."""

    def read(self, path: str) -> str:
        return Path(path).read_text(encoding="utf-8", errors="replace")

    def expand(self, pattern: str) -> list[str]:
        matches = sorted(glob.glob(pattern))
        return [m for m in matches if os.path.isfile(m) and not os.access(m, os.X_OK)]


# --- lexing ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Word:
    text: str
    location: Location
    brace: bool  # an unquoted "{" or "}"


@dataclass(frozen=True, slots=True)
class _EndOfLine:
    location: Location


_Token = _Word | _EndOfLine


def _decomment(line: str, location: Location) -> str:
    """Drop a `#`/`!` comment outside quotes and unescape `\\#`/`\\!` (parser.c decomment)."""
    out: list[str] = []
    quoted = False
    i = 0
    while i < len(line):
        ch = line[i]
        if ch == "\\" and i + 1 < len(line):
            nxt = line[i + 1]
            if not quoted and nxt in "#!":
                out.append(nxt)
            else:
                out.append(ch + nxt)
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in "#!":
            break
        out.append(ch)
        i += 1
    if quoted:
        raise KeepalivedSyntaxError(location, f"unterminated quote in {line.strip()!r}")
    return "".join(out).strip()


def _comment_of(line: str) -> str:
    """The text of a `#`/`!` comment outside quotes on `line`, or "" (for carrying it over)."""
    quoted = False
    i = 0
    while i < len(line):
        ch = line[i]
        if ch == "\\":
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in "#!":
            return line[i + 1 :].strip().lstrip("#!").strip()
        i += 1
    return ""


def _split_words(line: str, location: Location) -> list[_Word]:
    words: list[_Word] = []
    i = 0
    n = len(line)
    while i < n:
        ch = line[i]
        if ch.isspace():
            i += 1
        elif ch in "{}":
            words.append(_Word(ch, location, brace=True))
            i += 1
        elif ch == '"':
            end = line.find('"', i + 1)
            if end < 0:
                raise KeepalivedSyntaxError(location, "unterminated quote")
            words.append(_Word(line[i + 1 : end], location, brace=False))
            i = end + 1
        else:
            start = i
            while i < n and not line[i].isspace() and line[i] not in '{}"':
                i += 1
            words.append(_Word(line[start:i], location, brace=False))
    return words


@dataclass(slots=True)
class _Lexer:
    source: FileSource
    config_id: str | None
    definitions: dict[str, str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    empty_includes: list[Skipped] = field(default_factory=list)
    #: Statement start -> the comments that attach to it (see Statement.comments).
    comments: dict[Location, tuple[str, ...]] = field(default_factory=dict)

    def tokens_of_file(
        self, path: str, depth: int, included_from: Location | None
    ) -> Iterator[_Token]:
        if depth > MAX_INCLUDE_DEPTH:
            where = included_from or Location(path, 0)
            raise KeepalivedSyntaxError(where, f"includes nested deeper than {MAX_INCLUDE_DEPTH}")
        try:
            text = self.source.read(path)
        except OSError as exc:
            where = included_from or Location(path, 0)
            raise KeepalivedSyntaxError(where, f"cannot read {path}: {exc.strerror}") from exc
        self.files.append(path)
        yield from self.tokens_of_text(text, path, depth)

    def tokens_of_text(self, text: str, name: str, depth: int) -> Iterator[_Token]:
        pending: list[str] = []  # whole-line comments waiting for the next statement
        for number, raw in enumerate(text.splitlines(), start=1):
            location = Location(name, number)
            line = _decomment(raw, location)
            comment = _comment_of(raw)
            if not line:
                if comment:
                    pending.append(comment)
                continue
            if comment:
                pending.append(comment)
            if pending:
                self.comments[location] = tuple(pending)
                pending = []
            line = self._apply_condition(line, location)
            if not line:
                continue
            if line.startswith("~SEQ"):
                raise KeepalivedSyntaxError(
                    location, "~SEQ loops are not supported by the importer; expand them by hand"
                )
            definition = _DEFINITION.match(line)
            if definition:
                name_, value = definition.groups()
                if value.endswith("\\"):
                    raise KeepalivedSyntaxError(
                        location,
                        f"multi-line definition ${name_} is not supported; write it on one line",
                    )
                self.definitions[name_] = value.strip()
                continue
            line = self._substitute(line, location)
            words = _split_words(line, location)
            if (
                len(words) == 2
                and words[0].text == "include"
                and not words[0].brace
                and not words[1].brace
            ):
                yield from self._include(words[1].text, name, location, depth)
                continue
            yield from words
            yield _EndOfLine(location)

    def _apply_condition(self, line: str, location: Location) -> str:
        """Keep or drop an `@ID` / `@^ID` line as keepalived would with `-i config_id`."""
        if not line.startswith("@"):
            return line
        conditional = _CONDITION.match(line)
        if conditional is None:
            # "@ID" with nothing after it: keepalived drops the line whatever the id.
            self.skipped.append(Skipped(location, line, "conditional line with no content"))
            return ""
        negated = conditional.group(1) == "^"
        ident, body = conditional.group(2), conditional.group(3)
        matches = self.config_id is not None and ident == self.config_id
        if matches != negated:
            return body
        used = (
            f"this import used --config-id {self.config_id}"
            if self.config_id is not None
            else "this import ran without --config-id (as keepalived without -i)"
        )
        why = f"used only when keepalived runs with{'out' if negated else ''} -i {ident}; {used}"
        self.skipped.append(Skipped(location, line, why))
        return ""

    def _substitute(self, line: str, location: Location) -> str:
        if "$" not in line or not self.definitions:
            return line

        grown = 0

        def replace(match: re.Match[str]) -> str:
            nonlocal grown
            name = match.group(1) or match.group(2)
            if name not in self.definitions:
                return match.group(0)
            value = self.definitions[name]
            # Definitions that name others several times grow a line exponentially
            # with the passes ($B=$A$A, $C=$B$B...): stop before it eats the memory.
            grown += len(value)
            if len(line) + grown > MAX_SUBSTITUTED_LINE:
                raise KeepalivedSyntaxError(
                    location,
                    f"parameter substitution makes this line longer than "
                    f"{MAX_SUBSTITUTED_LINE} characters",
                )
            return value

        # keepalived re-scans after a replacement (a value may name another definition);
        # a bounded number of passes keeps a self-referencing definition from looping.
        for _ in range(8):
            grown = 0
            replaced = _REFERENCE.sub(replace, line)
            if replaced == line:
                return line
            line = replaced
        raise KeepalivedSyntaxError(location, "parameter definitions refer to each other in a loop")

    def _include(
        self, pattern: str, including_file: str, location: Location, depth: int
    ) -> Iterator[_Token]:
        if not os.path.isabs(pattern):
            pattern = os.path.join(os.path.dirname(including_file), pattern)
        matches = self.source.expand(pattern)
        if not matches:
            if not glob.has_magic(pattern):
                # keepalived logs "No config files matched" and carries on without the
                # file: every virtual server in it would vanish from the import. A named
                # file that is not there is an error, at the include's line.
                raise KeepalivedSyntaxError(
                    location, f"include {pattern}: no such file (the import would lose its content)"
                )
            # A pattern (an empty conf.d/*.conf) may legitimately match nothing.
            self.empty_includes.append(
                Skipped(location, f"include {pattern}", "the pattern matched no files")
            )
            return
        for path in matches:
            yield from self.tokens_of_file(path, depth + 1, location)


# --- parsing --------------------------------------------------------------------------


def _parse_block(
    tokens: Sequence[_Token],
    start: int,
    opener: Statement | None,
    comments: Mapping[Location, tuple[str, ...]],
) -> tuple[tuple[Statement, ...], int]:
    statements: list[Statement] = []
    i = start
    n = len(tokens)
    while i < n:
        token = tokens[i]
        if isinstance(token, _EndOfLine):
            i += 1
            continue
        if token.brace and token.text == "}":
            if opener is None:
                raise KeepalivedSyntaxError(token.location, "'}' without an open block")
            return tuple(statements), i + 1
        if token.brace:
            raise KeepalivedSyntaxError(token.location, "'{' without a keyword before it")
        words: list[str] = []
        location = token.location
        while i < n:
            current = tokens[i]
            if isinstance(current, _EndOfLine) or current.brace:
                break
            words.append(current.text)
            i += 1
        j = i
        while j < n and isinstance(tokens[j], _EndOfLine):
            j += 1
        next_token = tokens[j] if j < n else None
        statement = Statement(
            words[0], tuple(words[1:]), location, comments=comments.get(location, ())
        )
        if isinstance(next_token, _Word) and next_token.brace and next_token.text == "{":
            block, i = _parse_block(tokens, j + 1, statement, comments)
            statement = Statement(
                statement.keyword, statement.args, location, block, statement.comments
            )
        statements.append(statement)
    if opener is not None:
        raise KeepalivedSyntaxError(
            opener.location, f"block '{opener.keyword}' is not closed with '}}'"
        )
    return tuple(statements), i


def _parse(lexer: _Lexer, tokens: Iterator[_Token]) -> ParsedConfig:
    materialised = list(tokens)
    statements, _ = _parse_block(materialised, 0, None, lexer.comments)
    return ParsedConfig(
        statements, tuple(lexer.files), tuple(lexer.skipped), tuple(lexer.empty_includes)
    )


def parse_text(
    text: str,
    name: str = "<string>",
    *,
    source: FileSource | None = None,
    config_id: str | None = None,
) -> ParsedConfig:
    """Parse keepalived.conf text; `include`s are read through `source` (default: disk)."""
    lexer = _Lexer(source or FilesystemSource(), config_id)
    lexer.files.append(name)
    return _parse(lexer, lexer.tokens_of_text(text, name, 0))


def parse_file(
    path: str, *, source: FileSource | None = None, config_id: str | None = None
) -> ParsedConfig:
    """Parse a keepalived.conf and every file it includes."""
    lexer = _Lexer(source or FilesystemSource(), config_id)
    return _parse(lexer, lexer.tokens_of_file(path, 0, None))
