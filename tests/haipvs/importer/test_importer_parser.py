"""The keepalived.conf reader: syntax only, with file:line kept for every statement."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from haipvs.importer.parser import (
    FilesystemSource,
    KeepalivedSyntaxError,
    Location,
    Statement,
    parse_file,
    parse_text,
)


class DictSource:
    """Files held in a dict; glob patterns match with fnmatch, sorted like glob(3)."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = files
        self.reads: list[str] = []

    def read(self, path: str) -> str:
        self.reads.append(path)
        if path not in self.files:
            raise FileNotFoundError(2, "No such file or directory", path)
        return self.files[path]

    def expand(self, pattern: str) -> list[str]:
        return sorted(p for p in self.files if fnmatch.fnmatchcase(p, pattern))


def words(statements: tuple[Statement, ...]) -> list[tuple[str, ...]]:
    return [s.words for s in statements]


def test_blocks_nest_and_keep_line_numbers() -> None:
    text = """\
vrrp_instance VI_1 {
    interface eth0
    virtual_ipaddress {
        192.0.2.10/24
        192.0.2.11 dev eth1
    }
}
"""
    parsed = parse_text(text, "k.conf")
    (instance,) = parsed.statements
    assert instance.words == ("vrrp_instance", "VI_1")
    assert instance.location == Location("k.conf", 1)
    assert words(instance.block or ()) == [("interface", "eth0"), ("virtual_ipaddress",)]
    vips = instance.child("virtual_ipaddress")
    assert vips is not None
    assert words(vips.block or ()) == [("192.0.2.10/24",), ("192.0.2.11", "dev", "eth1")]
    assert [s.location.line for s in vips.block or ()] == [4, 5]
    assert str(vips.block[1].location) == "k.conf:5"  # type: ignore[index]


def test_comments_hash_and_bang_anywhere_outside_quotes() -> None:
    text = """\
! a whole-line comment
# another
real_server 10.0.0.1 80 {   # trailing comment
    inhibit_on_failure        ! set weight to 0
    helo_name "mail # not a comment ! either"
    misc_path /bin/check\\#1
}
"""
    (rs,) = parse_text(text).statements
    assert rs.words == ("real_server", "10.0.0.1", "80")
    assert words(rs.block or ()) == [
        ("inhibit_on_failure",),
        ("helo_name", "mail # not a comment ! either"),
        ("misc_path", "/bin/check#1"),
    ]


def test_quoted_string_is_one_word_without_quotes() -> None:
    (script,) = parse_text('vrrp_script chk {\n script "killall -0 sshd"\n}\n').statements
    inner = script.child("script")
    assert inner is not None
    assert inner.args == ("killall -0 sshd",)


def test_brace_on_next_line_and_one_line_blocks() -> None:
    text = """\
vrrp_instance VI_1
{
    track_script { chk_a chk_b }
    notification_email { ops@example.org }
}
virtual_server fwmark 1 {
}
"""
    first, second = parse_text(text).statements
    assert first.words == ("vrrp_instance", "VI_1")
    track = first.child("track_script")
    assert track is not None
    assert words(track.block or ()) == [("chk_a", "chk_b")]
    assert second.words == ("virtual_server", "fwmark", "1")
    assert second.block == ()


def test_statement_without_block_has_none() -> None:
    (stmt,) = parse_text("nopreempt\n").statements
    assert stmt.block is None


def test_child_returns_last_value_like_keepalived_override() -> None:
    (block,) = parse_text("x {\n priority 100\n priority 150\n}\n").statements
    last = block.child("priority")
    assert last is not None and last.args == ("150",)
    assert len(block.children("priority")) == 2
    assert block.child("missing") is None


def test_unclosed_block_names_the_opening_line() -> None:
    with pytest.raises(KeepalivedSyntaxError) as err:
        parse_text("global_defs {\n router_id a\nvrrp_instance X {\n}\n", "bad.conf")
    assert err.value.location == Location("bad.conf", 1)
    assert "global_defs" in str(err.value)


def test_extra_closing_brace_is_an_error_with_location() -> None:
    with pytest.raises(KeepalivedSyntaxError) as err:
        parse_text("a {\n}\n}\n", "bad.conf")
    assert str(err.value).startswith("bad.conf:3:")


def test_unterminated_quote_is_an_error() -> None:
    with pytest.raises(KeepalivedSyntaxError, match="unterminated quote"):
        parse_text('script "oops\n', "bad.conf")


def test_include_is_relative_to_the_including_file_and_sorted() -> None:
    source = DictSource(
        {
            "/etc/keepalived/keepalived.conf": "global_defs {\n}\ninclude conf.d/*.conf\n",
            "/etc/keepalived/conf.d/20-web.conf": "virtual_server 192.0.2.1 80 {\n}\n",
            "/etc/keepalived/conf.d/10-vrrp.conf": "vrrp_instance V {\n}\n",
            "/etc/keepalived/conf.d/README": "not matched\n",
        }
    )
    parsed = parse_file("/etc/keepalived/keepalived.conf", source=source)
    assert [s.keyword for s in parsed.statements] == [
        "global_defs",
        "vrrp_instance",
        "virtual_server",
    ]
    assert parsed.statements[1].location == Location("/etc/keepalived/conf.d/10-vrrp.conf", 1)
    assert parsed.files == (
        "/etc/keepalived/keepalived.conf",
        "/etc/keepalived/conf.d/10-vrrp.conf",
        "/etc/keepalived/conf.d/20-web.conf",
    )


def test_include_inside_a_block_splices_its_statements() -> None:
    source = DictSource(
        {
            "/k/main.conf": (
                "virtual_server 192.0.2.1 80 {\n  include servers.inc\n  lb_algo rr\n}\n"
            ),
            "/k/servers.inc": "real_server 10.0.0.1 80 {\n weight 2\n}\n",
        }
    )
    (vs,) = parse_file("/k/main.conf", source=source).statements
    assert [s.keyword for s in vs.block or ()] == ["real_server", "lb_algo"]
    assert vs.block[0].location == Location("/k/servers.inc", 1)  # type: ignore[index]


def test_nested_include_resolves_against_its_own_directory() -> None:
    source = DictSource(
        {
            "/k/main.conf": "include sub/a.conf\n",
            "/k/sub/a.conf": "include b.conf\n",
            "/k/sub/b.conf": "vrrp_instance deep {\n}\n",
        }
    )
    (stmt,) = parse_file("/k/main.conf", source=source).statements
    assert stmt.location.file == "/k/sub/b.conf"


def test_include_pattern_without_match_is_noted_not_fatal() -> None:
    # An empty conf.d/*.conf is legal: nothing is lost, the translator notes it.
    source = DictSource({"/k/main.conf": "include missing/*.conf\nglobal_defs {\n}\n"})
    parsed = parse_file("/k/main.conf", source=source)
    assert [s.keyword for s in parsed.statements] == ["global_defs"]
    assert parsed.skipped == ()
    (empty,) = parsed.empty_includes
    assert empty.location == Location("/k/main.conf", 1)
    assert empty.reason == "the pattern matched no files"


def test_missing_named_include_is_an_error_at_the_include_line() -> None:
    # keepalived carries on without it; the import would silently lose every
    # virtual server the file held.
    source = DictSource(
        {
            "/k/main.conf": (
                "global_defs {\n}\n  include services.conf\nvirtual_server 1.2.3.4 80 {\n}\n"
            )
        }
    )
    with pytest.raises(KeepalivedSyntaxError) as caught:
        parse_file("/k/main.conf", source=source)
    assert caught.value.location == Location("/k/main.conf", 3)
    assert caught.value.message == (
        "include /k/services.conf: no such file (the import would lose its content)"
    )


def test_comments_attach_to_the_next_statement_and_to_their_line() -> None:
    text = (
        "! header\n"
        "\n"
        "# the web pair\n"
        "vrrp_instance VI_1 {\n"
        "    priority 150   # primary director\n"
        '    auth_pass "a#b"\n'
        "}\n"
    )
    (stmt,) = parse_text(text).statements
    assert stmt.comments == ("header", "the web pair")
    priority, auth = stmt.block or ()
    assert priority.comments == ("primary director",)
    assert auth.args == ("a#b",)
    assert auth.comments == ()


def test_skipped_conditional_line_names_the_missing_config_id() -> None:
    parsed = parse_text("@high priority 170\n")
    (skipped,) = parsed.skipped
    assert skipped.reason == (
        "used only when keepalived runs with -i high; "
        "this import ran without --config-id (as keepalived without -i)"
    )
    (other,) = parse_text("@high priority 170\n", config_id="low").skipped
    assert other.reason.endswith("this import used --config-id low")


def test_include_cycle_is_refused() -> None:
    source = DictSource({"/k/a.conf": "include b.conf\n", "/k/b.conf": "include a.conf\n"})
    with pytest.raises(KeepalivedSyntaxError, match="nested deeper"):
        parse_file("/k/a.conf", source=source)


def test_include_with_extra_words_is_a_plain_statement() -> None:
    # keepalived only treats exactly two words as an include (check_include()).
    (stmt,) = parse_text("include a b\n", source=DictSource({})).statements
    assert stmt.words == ("include", "a", "b")


def test_unreadable_top_file_is_a_syntax_error_with_its_name() -> None:
    with pytest.raises(KeepalivedSyntaxError, match="cannot read /nope"):
        parse_file("/nope", source=DictSource({}))


def test_conditional_lines_follow_config_id() -> None:
    text = "x {\n@high priority 170\n@low\tpriority 85\n@^high weight 1\n}\n"
    (none_block,) = parse_text(text).statements
    assert words(none_block.block or ()) == [("weight", "1")]
    (high,) = parse_text(text, config_id="high").statements
    assert words(high.block or ()) == [("priority", "170")]
    (low,) = parse_text(text, config_id="low").statements
    assert words(low.block or ()) == [("priority", "85"), ("weight", "1")]


def test_dropped_conditional_lines_are_reported_with_location() -> None:
    parsed = parse_text("@high priority 170\n", "c.conf")
    assert parsed.statements == ()
    (skipped,) = parsed.skipped
    assert skipped.location == Location("c.conf", 1)
    assert skipped.reason.startswith("used only when keepalived runs with -i high; ")


def test_definitions_are_substituted() -> None:
    text = "$VIP=192.0.2.10\n$PORT = 80\nvirtual_server $VIP ${PORT} {\n}\n"
    (vs,) = parse_text(text).statements
    assert vs.words == ("virtual_server", "192.0.2.10", "80")


def test_unknown_reference_is_left_alone() -> None:
    (stmt,) = parse_text("$A=1\nscript $HOME/x\n").statements
    assert stmt.args == ("$HOME/x",)


def test_seq_and_multiline_definitions_are_refused() -> None:
    with pytest.raises(KeepalivedSyntaxError, match="~SEQ"):
        parse_text("~SEQ(i, 1, 3) real_server 10.0.0.$i 80 {\n}\n")
    with pytest.raises(KeepalivedSyntaxError, match="multi-line"):
        parse_text("$RS=real_server \\\n")


def test_filesystem_source_skips_executables_and_directories(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "a.conf").write_text("vrrp_instance A {\n}\n")
    (tmp_path / "conf.d" / "b.conf").write_text("vrrp_instance B {\n}\n")
    (tmp_path / "conf.d" / "sub.conf").mkdir()
    script = tmp_path / "conf.d" / "c.conf"
    script.write_text("vrrp_instance C {\n}\n")
    os.chmod(script, 0o755)
    main = tmp_path / "keepalived.conf"
    main.write_text("include conf.d/*.conf\n")
    parsed = parse_file(str(main))
    assert [s.args[0] for s in parsed.statements] == ["A", "B"]
    assert FilesystemSource().expand(str(tmp_path / "nothing*")) == []


# --- property: any tree, written any way keepalived accepts, reads back the same ------

_WORD = st.from_regex(r"[A-Za-z0-9_./:-]{1,10}", fullmatch=True)
_KEYWORD = st.from_regex(r"[a-z][a-z0-9_]{0,9}", fullmatch=True).filter(lambda k: k != "include")
_QUOTED = st.from_regex(r"[A-Za-z0-9 #!{}_./-]{0,12}", fullmatch=True)


@st.composite
def _statement(draw: st.DrawFn, depth: int = 0) -> Statement:
    keyword = draw(_KEYWORD)
    args = tuple(draw(st.lists(st.one_of(_WORD, _QUOTED.map(lambda q: '"' + q)), max_size=3)))
    block: tuple[Statement, ...] | None = None
    if depth < 3 and draw(st.booleans()):
        block = tuple(draw(st.lists(_statement(depth + 1), max_size=3)))
    return Statement(keyword, args, Location("p.conf", 0), block)


Draw = Callable[[st.SearchStrategy[Any]], Any]


def _render(statement: Statement, draw: Draw, indent: int = 0) -> list[str]:
    pad = " " * draw(st.integers(0, 3)) + "\t" * (indent % 2)
    words = " ".join(a + '"' if a.startswith('"') else a for a in statement.words)
    comment = draw(st.sampled_from(["", "  # note", "\t! note {", " #"]))
    if statement.block is None:
        return [pad + words + comment]
    children = statement.block
    if len(children) == 1 and children[0].block is None and draw(st.booleans()):
        inner = " ".join(a + '"' if a.startswith('"') else a for a in children[0].words)
        return [f"{pad}{words} {{ {inner} }}{comment}"]
    if draw(st.booleans()):
        lines = [pad + words + comment, pad + "{"]
    else:
        lines = [f"{pad}{words} {{{comment}"]
    for child in children:
        lines += _render(child, draw, indent + 1)
        if draw(st.booleans()):
            lines.append("")
    lines.append(pad + "}")
    return lines


def _shape(statements: tuple[Statement, ...] | None) -> object:
    if statements is None:
        return None
    return [(s.keyword, [a.lstrip('"') for a in s.args], _shape(s.block)) for s in statements]


@given(st.data())
@settings(max_examples=100, deadline=None)
def test_any_tree_written_any_valid_way_reads_back(data: st.DataObject) -> None:
    tree = tuple(data.draw(st.lists(_statement(), min_size=1, max_size=4)))
    lines: list[str] = []
    for statement in tree:
        lines += _render(statement, data.draw)
    parsed = parse_text("\n".join(lines) + "\n", "p.conf")
    assert _shape(parsed.statements) == _shape(tree)


def test_exponential_parameter_substitution_is_refused_at_its_line() -> None:
    # Each definition names the previous one ten times: eight passes would make the
    # line 10^8 characters long.
    names = "ABCDEFGHI"
    text = "$A=xxxxxxxxxx\n" + "".join(
        f"${names[i + 1]}={('$' + names[i] + ' ') * 10}\n" for i in range(8)
    ) + "global_defs {\n router_id $I\n}\n"
    with pytest.raises(KeepalivedSyntaxError) as err:
        parse_text(text, "bomb.conf")
    assert str(err.value) == (
        "bomb.conf:11: parameter substitution makes this line longer than 65536 characters"
    )


def test_a_long_but_bounded_substitution_still_works() -> None:
    text = "$A=192.0.2.1 192.0.2.2\n$B=$A $A $A\nvirtual_ipaddress {\n $B $B\n}\n"
    (block,) = parse_text(text, "ok.conf").statements
    assert words(block.block or ()) == [("192.0.2.1", "192.0.2.2") * 6]
