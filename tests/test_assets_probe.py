"""`auto` probes the download hosts in parallel and never waits more than ~2 s in all."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from transferlens.tutorial import _assets as assets_module
from transferlens.tutorial import resolve_asset_mode

LIMIT_S = assets_module._PROBE_TIMEOUT_S


@pytest.fixture(autouse=True)
def _no_cached_real_assets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("TORCH_HOME", "FASTAI_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def hanging_hosts() -> Iterator[list[tuple[str, int]]]:
    """Three local ports that never complete a TCP handshake (a blackhole).

    Each listens with a backlog of 0 and never accepts; one connection fills the queue, and the
    kernel then drops every further SYN, so a connect hangs until its timeout.
    """
    sockets: list[socket.socket] = []
    addresses = []
    for _ in range(3):
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        filler = socket.create_connection(server.getsockname(), timeout=1)
        sockets += [server, filler]
        addresses.append(server.getsockname())
    probe = socket.socket()
    probe.settimeout(0.3)
    with pytest.raises(TimeoutError):  # the blackhole holds
        probe.connect(addresses[0])
    probe.close()
    yield addresses
    for sock in sockets:
        sock.close()


def _timed_auto() -> tuple[tuple[str, str], float]:
    started = time.perf_counter()
    resolved = resolve_asset_mode("auto")
    return resolved, time.perf_counter() - started


def test_hanging_hosts_are_probed_in_parallel_within_the_limit(
    monkeypatch: pytest.MonkeyPatch, hanging_hosts: list[tuple[str, int]]
) -> None:
    monkeypatch.setattr(assets_module, "_PROBE_ADDRESSES", tuple(hanging_hosts))
    (mode, reason), seconds = _timed_auto()
    print(f"3 hanging hosts: auto decided in {seconds:.2f} s")
    assert mode == "standin" and reason == f"127.0.0.1 did not answer within {LIMIT_S:g} s"
    # One after the other would take 3 x 2 s; in parallel it is the limit, once.
    assert LIMIT_S * 0.9 <= seconds <= LIMIT_S + 0.5


def test_a_hung_name_lookup_does_not_hold_auto_up(monkeypatch: pytest.MonkeyPatch) -> None:
    def hung_lookup(address: tuple[str, int], timeout: float) -> socket.socket:
        time.sleep(60)  # getaddrinfo ignores socket timeouts
        raise OSError("unreachable")

    monkeypatch.setattr(assets_module.socket, "create_connection", hung_lookup)
    (mode, reason), seconds = _timed_auto()
    print(f"hung DNS lookups: auto decided in {seconds:.2f} s")
    assert mode == "standin" and reason.startswith("download.pytorch.org did not answer")
    assert seconds <= LIMIT_S + 0.5


def test_a_refusing_host_ends_the_probe_at_once(
    monkeypatch: pytest.MonkeyPatch, hanging_hosts: list[tuple[str, int]]
) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    refusing = closed.getsockname()
    closed.close()  # nothing listens there: connecting is refused at once
    monkeypatch.setattr(assets_module, "_PROBE_ADDRESSES", (hanging_hosts[0], refusing))
    (mode, _), seconds = _timed_auto()
    assert mode == "standin" and seconds < LIMIT_S / 2


def test_answering_hosts_give_real_without_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    servers = [socket.create_server(("127.0.0.1", 0), backlog=8) for _ in range(2)]
    try:
        monkeypatch.setattr(
            assets_module, "_PROBE_ADDRESSES", tuple(s.getsockname() for s in servers)
        )
        (mode, reason), seconds = _timed_auto()
    finally:
        for server in servers:
            server.close()
    assert (mode, reason) == ("real", "download hosts answer")
    assert seconds < LIMIT_S / 2
