"""Model values: normalisation, validation, rendering, kernel flag decoding."""

from __future__ import annotations

import pytest

from haipvs.ipvs.model import (
    SVC_F_HASHED,
    SVC_F_ONEPACKET,
    SVC_F_PERSISTENT,
    SVC_F_SCHED1,
    SVC_F_SCHED2,
    ActualTable,
    AddDest,
    DeleteService,
    Dest,
    DestKey,
    DestStats,
    Family,
    Forwarding,
    IpvsTable,
    Protocol,
    SchedFlags,
    Service,
    ServiceKey,
    TunFlags,
    TunType,
    UpdateDest,
    op_name,
    op_target,
)

VS = ServiceKey.tcp("198.51.100.10", 80)


def test_service_key_renders_as_in_the_log_contract() -> None:
    assert str(VS) == "tcp/198.51.100.10:80"
    assert str(ServiceKey.udp("2001:DB8::0:1", 53)) == "udp/[2001:db8::1]:53"
    assert str(ServiceKey.sctp("192.0.2.1", 9)) == "sctp/192.0.2.1:9"
    assert str(ServiceKey.for_fwmark(10)) == "fwmark/10"
    assert str(ServiceKey.for_fwmark(10, Family.INET6)) == "fwmark6/10"


def test_addresses_are_normalised_so_equal_keys_compare_equal() -> None:
    assert ServiceKey(Protocol.TCP, "2001:db8:0::10", 80) == ServiceKey.tcp("2001:db8::10", 80)
    assert ServiceKey.tcp("2001:db8::10", 80).family is Family.INET6
    assert DestKey("2001:0db8::0011", 80) == DestKey("2001:db8::11", 80)
    assert str(DestKey("10.0.0.11", 80)) == "10.0.0.11:80"
    assert str(DestKey("2001:db8::11", 80)) == "[2001:db8::11]:80"


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        (lambda: ServiceKey.tcp("not-an-ip", 80), r"^not an IP address: 'not-an-ip'"),
        (lambda: ServiceKey.tcp("192.0.2.1", 70000), r"^service port must be 0\.\.65535"),
        (lambda: ServiceKey(Protocol.TCP, None, 80), r"^an address service needs protocol"),
        (lambda: ServiceKey(fwmark=5, protocol=Protocol.TCP), r"^a fwmark service has no proto"),
        (lambda: ServiceKey.for_fwmark(0), r"^fwmark must be 1\.\.4294967295, got 0"),
        (lambda: DestKey("10.0.0.1", -1), r"^real server port must be 0\.\.65535, got -1"),
    ],
)
def test_invalid_keys_raise(build: object, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        build()  # type: ignore[operator]


def test_keys_sort_by_family_protocol_address_port_then_fwmarks() -> None:
    keys = [
        ServiceKey.for_fwmark(3),
        ServiceKey.tcp("10.0.0.10", 80),
        ServiceKey.tcp("9.0.0.10", 443),
        ServiceKey.tcp("9.0.0.10", 80),
        ServiceKey.udp("9.0.0.10", 53),
        ServiceKey.tcp("2001:db8::1", 80),
    ]
    ordered = sorted(keys, key=ServiceKey.sort_key)
    assert [str(k) for k in ordered] == [
        "tcp/9.0.0.10:80",
        "tcp/9.0.0.10:443",
        "tcp/10.0.0.10:80",
        "udp/9.0.0.10:53",
        "tcp/[2001:db8::1]:80",
        "fwmark/3",
    ]


def test_persistence_netmask_is_stored_as_a_prefix_length() -> None:
    assert Service(VS, persistence_netmask="255.255.255.0").persistence_netmask == 24
    assert Service(VS, persistence_netmask="/16").persistence_netmask == 16
    assert Service(VS, persistence_netmask=None).persistence_netmask == 32
    v6 = ServiceKey.tcp("2001:db8::1", 80)
    assert Service(v6).persistence_netmask == 128
    assert Service(v6, persistence_netmask=64).prefix_length == 64
    assert Service(VS, persistence_netmask=24).netmask_v4 == "255.255.255.0"
    assert Service(VS, persistence_netmask=24) == Service(VS, persistence_netmask="255.255.255.0")
    with pytest.raises(ValueError):
        Service(VS, persistence_netmask=33)
    with pytest.raises(ValueError):
        Service(VS, persistence_netmask="255.0.255.0")


def test_scheduler_flags_must_match_their_scheduler() -> None:
    Service(VS, "sh", SchedFlags(sh_fallback=True, sh_port=True))
    Service(VS, "mh", SchedFlags(mh_port=True))
    with pytest.raises(ValueError):
        Service(VS, "rr", SchedFlags(sh_port=True))
    with pytest.raises(ValueError):
        Service(VS, "sh", SchedFlags(mh_fallback=True))
    with pytest.raises(ValueError):
        Service(VS, "")


def test_flag_bits_round_trip_through_the_kernel_encoding() -> None:
    for scheduler, flags in [
        ("sh", SchedFlags(sh_fallback=True, sh_port=True)),
        ("sh", SchedFlags(sh_port=True)),
        ("mh", SchedFlags(mh_fallback=True)),
        ("rr", SchedFlags(one_packet=True)),
        ("wlc", SchedFlags()),
    ]:
        service = Service(VS, scheduler, flags, persistence_timeout=300)
        bits = service.flag_bits()
        assert bits & SVC_F_PERSISTENT
        # The kernel adds HASHED to every service it reports.
        back = Service.from_kernel(
            VS, scheduler=scheduler, flags=bits | SVC_F_HASHED, timeout=300, netmask=32
        )
        assert back == service
    assert SchedFlags(sh_fallback=True).to_bits() == SVC_F_SCHED1
    assert SchedFlags(mh_port=True, one_packet=True).to_bits() == SVC_F_SCHED2 | SVC_F_ONEPACKET


def test_a_timeout_without_the_persistent_flag_is_not_persistence() -> None:
    # The kernel reports the stored timeout even for a non-persistent service.
    service = Service.from_kernel(VS, scheduler="wlc", flags=SVC_F_HASHED, timeout=300,
                                  netmask="255.255.255.255")
    assert service.persistence_timeout == 0
    assert not service.is_persistent
    assert service == Service(VS)


def test_dest_validation() -> None:
    key = DestKey("10.0.0.11", 80)
    Dest(key, forwarding=Forwarding.TUNNEL, tun_type=TunType.GUE, tun_port=6080,
         tun_flags=TunFlags.CSUM)
    Dest(key, weight=0, u_thresh=100, l_thresh=10)
    with pytest.raises(ValueError):
        Dest(key, weight=-1)
    with pytest.raises(ValueError):
        Dest(key, tun_type=TunType.GRE)  # tunnel settings without tunnel forwarding
    with pytest.raises(ValueError):
        Dest(key, forwarding=Forwarding.TUNNEL, tun_type=TunType.GUE)  # GUE needs a port
    with pytest.raises(ValueError):
        Dest(key, forwarding=Forwarding.TUNNEL, tun_port=80)  # port only for GUE
    with pytest.raises(ValueError):
        Dest(key, u_thresh=10, l_thresh=20)  # kernel: ERANGE


def test_dest_differences_name_each_changed_field() -> None:
    key = DestKey("10.0.0.11", 80)
    old = Dest(key, weight=2)
    new = Dest(key, weight=0, forwarding=Forwarding.DROUTE)
    assert new.differences(old) == ("weight 2->0", "forwarding masq->droute")
    assert old.differences(old) == ()


def test_table_equality_and_lookups() -> None:
    s = Service(VS)
    d = Dest(DestKey("10.0.0.11", 80))
    table = IpvsTable.build([(s, [d])])
    assert table == IpvsTable.build([(Service(VS), [Dest(DestKey("10.0.0.11", 80))])])
    assert table != IpvsTable.build([(Service(VS), [])])
    assert VS in table and len(table) == 1 and table.dest_count() == 1
    assert table.dest(VS, d.key) == d
    assert table.dest(VS, DestKey("10.0.0.12", 80)) is None
    assert table.restricted_to([]) == IpvsTable()
    with pytest.raises(ValueError):
        IpvsTable.build([(s, [d, d])])
    with pytest.raises(ValueError):
        IpvsTable.build([(s, []), (s, [])])


def test_actual_table_stats_default_to_zero() -> None:
    d = DestKey("10.0.0.11", 80)
    actual = ActualTable(IpvsTable(), {VS: {d: DestStats(3, 4, 1)}})
    assert actual.stats_of(VS, d).connections == 7
    assert actual.stats_of(VS, DestKey("10.0.0.12", 80)) == DestStats()
    assert actual.stats_of(ServiceKey.udp("192.0.2.1", 53), d) == DestStats()


def test_op_names_and_targets() -> None:
    d = Dest(DestKey("10.0.0.11", 80))
    assert op_name(AddDest(VS, d)) == "add_dest"
    assert op_name(UpdateDest(VS, d)) == "update_dest"
    assert op_name(DeleteService(VS)) == "delete_service"
    assert op_target(AddDest(VS, d)) == "tcp/198.51.100.10:80 10.0.0.11:80"
    assert op_target(DeleteService(VS)) == "tcp/198.51.100.10:80"


PURE_MODULES = ["model", "desired", "plan", "drain", "errors", "kernel", "fake"]
FORBIDDEN = {"asyncio", "socket", "pyroute2", "aiohttp", "structlog", "time", "logging",
             "random", "haipvs.ipvs.programmer", "haipvs.ipvs.coalescer",
             "haipvs.ipvs.netlink"}


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_modules_import_no_io(module: str) -> None:
    """Decisions are pure (no IO in the cores); the fake is IO-free too."""
    import ast
    import pathlib

    import haipvs.ipvs

    path = pathlib.Path(haipvs.ipvs.__file__).parent / f"{module}.py"
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    roots = {name.split(".")[0] for name in imported} | imported
    assert not roots & FORBIDDEN, f"{module}.py imports {sorted(roots & FORBIDDEN)}"
