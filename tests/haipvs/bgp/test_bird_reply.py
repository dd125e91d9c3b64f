"""BIRD's reply grammar with literal replies recorded from BIRD 2.0.12's control socket."""

from __future__ import annotations

import errno

import pytest

from haipvs.bgp.bird import BirdReply, ReplyParser, SpeakerError, parse_protocol_states

SHOW_PROTOCOLS = (
    b"2002-Name       Proto      Table      State  Since         Info\n"
    b"1002-device1    Device     ---        up     14:19:52.868  \n"
    b" haipvs_vip_web Static     master4    down   14:19:52.868  \n"
    b" bgp_r1     BGP        ---        up     14:20:01.100  Established   \n"
    b"0000 \n"
)


def test_a_reply_split_anywhere_is_reassembled() -> None:
    parser = ReplyParser()
    replies = []
    for i in range(len(SHOW_PROTOCOLS)):
        replies += parser.feed(SHOW_PROTOCOLS[i : i + 1])
    assert len(replies) == 1
    reply = replies[0]
    assert reply.code == 0 and not reply.failed
    assert [code for code, _ in reply.lines] == [2002, 1002, 1002, 1002, 0]


def test_protocol_states_from_show_protocols() -> None:
    (reply,) = ReplyParser().feed(SHOW_PROTOCOLS)
    assert parse_protocol_states(reply) == {
        "device1": "up",
        "haipvs_vip_web": "down",
        "bgp_r1": "up Established",
    }


def test_two_replies_in_one_read_and_errors() -> None:
    data = b"0011-haipvs_vip_web: enabled\n0000 \n9001 syntax error, unexpected CF_SYM_UNDEFINED\n"
    first, second = ReplyParser().feed(data)
    assert first == BirdReply(0, ((11, "haipvs_vip_web: enabled"), (0, "")))
    assert second.failed and second.code == 9001
    assert second.text == "syntax error, unexpected CF_SYM_UNDEFINED"


def test_a_line_that_is_not_birds_grammar_is_a_protocol_error() -> None:
    with pytest.raises(SpeakerError, match=r"unexpected line 'HTTP/1\.1 400") as raised:
        ReplyParser().feed(b"HTTP/1.1 400 Bad Request\n")
    assert raised.value.code == errno.EPROTO


def test_an_endless_reply_is_refused() -> None:
    parser = ReplyParser()
    with pytest.raises(SpeakerError, match="longer than 1 MiB"):
        for _ in range(20):
            parser.feed(b"1002-" + b"x" * 65536)
