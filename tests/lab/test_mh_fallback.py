"""An `mh` service whose real server is drained (weight 0) loses no new connection.

The kernel's Maglev scheduler keeps a weight-0 destination's slots in its table and,
without IP_VS_SVC_F_SCHED_MH_FALLBACK, answers "no destination" for the clients hashed
to them (ip_vs_mh.c). haipvs sets weight 0 itself (drain on removal,
inhibit_on_failure), so a config that says `scheduler: mh` must compile to a service
with the fallback. Lab only: the config is compiled as the daemon does, the service is
programmed into the guest's kernel, and the client's connections go through it.
"""

from __future__ import annotations

import dataclasses
import os

import pytest
from test_ipvs_forwarding import NAT, VIP, WEB, fetch, lab_network, program

from haipvs.config import load_config_text
from haipvs.config.compile import compile_config
from haipvs.ipvs.model import AddDest, AddService, UpdateDest

pytestmark = pytest.mark.lab


@pytest.fixture
def prefix() -> str:
    return f"mh{os.getpid() % 1000}-"

CONFIG = f"""
virtual_servers:
  - vip: {VIP}
    port: 80
    scheduler: mh
    forwarding: nat
    real_servers: [{{address: 10.0.0.11}}, {{address: 10.0.0.12}}]
"""


async def test_a_drained_real_server_of_an_mh_service_loses_no_new_connection(
    prefix: str,
) -> None:
    (spec,) = compile_config(load_config_text(CONFIG).config).services
    assert spec.service.key == WEB
    ops = [AddService(spec.service), *(AddDest(WEB, dest) for dest in spec.real_servers)]
    async with lab_network(NAT, prefix) as net:
        kernel = await program(net, ops)
        try:
            # One client address: mh (without mh-port) sends it to one real server.
            first = fetch(net, VIP)
            assert {fetch(net, VIP) for _ in range(3)} == {first}
            hashed = next(d for d in spec.real_servers if d.key.address.endswith(first[-1]))
            # Drain it as the programmer does: weight 0 first, the dest stays.
            await kernel.apply(UpdateDest(WEB, dataclasses.replace(hashed, weight=0)))
            other = "rs2" if first == "rs1" else "rs1"
            assert [fetch(net, VIP) for _ in range(4)] == [other] * 4
        finally:
            await kernel.close()
