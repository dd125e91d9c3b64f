"""DNS probe: keepalived's DNS_CHECK (type, name) with an expected rcode and answer.

This module owns one DNS query over UDP (RFC 1035 §4.2.1) to a real server and
the verdict on its reply. dnspython builds and parses the messages; the
datagram exchange is checkers/udp.py's.

Rules kept here:
- The peer's behaviour is never an exception: "rcode SERVFAIL", "no reply after
  1.0s", "port unreachable", "answer 192.0.2.9 does not include 192.0.2.1".
- Only a reply to *our* query counts (same id, same question: dnspython's
  Message.is_response, RFC 5452 §9.1): anything else, garbage included, is
  dropped and the wait goes on until the deadline.
- A truncated reply (TC bit, RFC 1035 §4.2.1) still carries the rcode; the
  answer check uses what arrived and does not retry over TCP.
"""

from __future__ import annotations

import asyncio

import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype

from checkers.result import ProbeResult
from checkers.spec import DnsCheck, Target, probe_port
from checkers.udp import DatagramError, RejectedReplyError, exchange_datagram

__all__ = ["check_dns"]


def _normalize(text: str) -> str:
    """Compare names and rdata the way operators write them: case and final dot aside."""
    return text.strip().rstrip(".").lower()


def _answers(reply: dns.message.Message, rdtype: int) -> list[str]:
    return [rdata.to_text() for rrset in reply.answer if rrset.rdtype == rdtype for rdata in rrset]


async def check_dns(
    address: str,
    port: int,
    timeout: float,  # noqa: ASYNC109 - the probe enforces its own deadline (see header)
    *,
    query_name: str,
    query_type: str = "A",
    expect_rcode: str = "NOERROR",
    expect_answer: str | None = None,
) -> ProbeResult:
    """Up when the server answers the query within `timeout` with `expect_rcode`
    and, if `expect_answer` is set, an answer record of `query_type` whose text
    equals it (case and a final dot aside: "192.0.2.1", "www.example.").
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    rdtype = dns.rdatatype.from_text(query_type)
    query = dns.message.make_query(query_name, rdtype)

    def accept(data: bytes) -> dns.message.Message:
        try:
            reply = dns.message.from_wire(data, ignore_trailing=True)
        except dns.message.Truncated as exc:
            # The header and question are intact; the rcode is what we need.
            reply = exc.message()  # type: ignore[no-untyped-call]
        except dns.exception.DNSException as exc:
            raise RejectedReplyError(f"malformed reply: {type(exc).__name__}") from None
        if not query.is_response(reply):
            raise RejectedReplyError("reply does not match the query")
        return reply

    try:
        reply = await exchange_datagram(
            address, port, query.to_wire(), started=started, timeout=timeout, accept=accept
        )
    except DatagramError as exc:
        return ProbeResult(ok=False, detail=exc.detail, latency=loop.time() - started)
    latency = loop.time() - started

    rcode = dns.rcode.to_text(reply.rcode())
    if rcode != expect_rcode:
        detail = f"rcode {rcode}"
        if expect_rcode != "NOERROR":
            detail += f", expected {expect_rcode}"
        return ProbeResult(ok=False, detail=detail, latency=latency)
    if expect_answer is not None:
        answers = _answers(reply, rdtype)
        if not answers:
            return ProbeResult(
                ok=False, detail=f"no {query_type} answer for {query_name}", latency=latency
            )
        wanted = _normalize(expect_answer)
        if all(_normalize(answer) != wanted for answer in answers):
            shown = ",".join(sorted(answers)[:3])
            return ProbeResult(
                ok=False,
                detail=f"answer {shown} does not include {expect_answer}",
                latency=latency,
            )
    return ProbeResult(ok=True, detail=f"rcode {rcode}", latency=latency)


async def probe(spec: DnsCheck, target: Target) -> ProbeResult:
    """The DNS_CHECK of ``spec`` against ``target`` (run_probe's entry point)."""
    return await check_dns(
        str(target.address),
        probe_port(spec, target),
        spec.timing.timeout,
        query_name=spec.query_name,
        query_type=spec.query_type,
        expect_rcode=spec.expect_rcode,
        expect_answer=spec.expect_answer,
    )
