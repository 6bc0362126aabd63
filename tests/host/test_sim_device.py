"""SimDevice against a served card (``crossnic sim --serve``, the real gateware in Verilator):
registers, bus errors, host memory shared with the card's DMA, interrupts, cables."""

import subprocess
import sys
import time
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from crossnic.gateware.layouts import Priority
from crossnic.gateware.nic_core import FULL_OPTIONS, NIC_ID, NicCore
from crossnic.host.classifier import ClassifierConfig, MacEntry, Policy, VnicSettings, writes
from crossnic.host.device import BusError, Device, DeviceError
from crossnic.host.registers import Registers
from crossnic.host.rings import RxRing, TxRing
from crossnic.host.sim_device import SimDevice
from crossnic.host.sim_serve_client import start_card
from crossnic.sim.scenario import mac_text

# every test of this module on one worker, in order: they share one served card
pytestmark = pytest.mark.xdist_group("served_card")

RINGS = 64
VFS = FULL_OPTIONS["vfs"]
MAC_A, MAC_B = 0x0200_0000_0A01, 0x0200_0000_0B01


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A card served with port 0 cabled to port 1."""
    tmp = tmp_path_factory.mktemp("served")
    sock = tmp / "card.sock"
    proc = start_card(sock, ["other", "none"], tmp / "serve.log", memory_mb=16)
    try:
        yield sock, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def dev(served):
    with SimDevice(served[0]) as d:
        yield d


def registers(dev: SimDevice) -> Registers:
    return Registers(NicCore(**FULL_OPTIONS).regmap(), dev.read32, dev.write32)


def test_a_vf_client_sees_only_its_window(served):
    """A client attached as a VF: its addresses are words of its window, bounded by it; a
    card without that VF refuses the attachment."""
    with pytest.raises(DeviceError, match="no VF 8"):
        SimDevice(served[0], vf=VFS)
    window = NicCore(**FULL_OPTIONS).vf_window()
    with SimDevice(served[0], vf=3) as vf:
        assert vf.vectors == 17
        with pytest.raises(BusError, match="DECERR"):      # not enabled by the PF
            vf.read32(window["port.info"].addr)
        with pytest.raises(BusError, match="DECERR"):      # beyond the window (the VF BAR)
            vf.read32(1024)
        with pytest.raises(MemoryError):                   # no memory granted yet
            vf.alloc(64)
    with SimDevice(served[0]) as pf:
        regs = registers(pf)
        assert regs.read("vf[3].reg_denied") == 1          # the first: reached the card
        regs.write("vf[3].reg_denied", 0)


def test_registers_and_bus_errors(dev):
    assert isinstance(dev, Device)
    assert dev.vectors == 2 * RINGS + 1 + VFS     # rx, tx, the PF's mailbox, each VF's
    regs = registers(dev)
    assert regs.read("nic.id") == NIC_ID
    assert regs.read_field("nic.params", "rings") == RINGS
    regs.write("rx_ring[5].irq_moder", 0x0003_0004)
    assert regs.read("rx_ring[5].irq_moder") == 0x0003_0004
    regs.write("rx_ring[5].irq_moder", 0)
    with pytest.raises(BusError, match="DECERR"):
        dev.read32(0x7FF0)                          # nothing mapped there
    before = regs.read("nic.decerr")
    with pytest.raises(BusError):
        dev.write32(0x7FF0, 1)
    assert regs.read("nic.decerr") == before + 1
    with pytest.raises(BusError, match="DECERR"):
        dev.read32(1 << 20)                         # beyond BAR0 (512 KB)
    with pytest.raises(ValueError):
        dev.write32(0, 1 << 32)


def test_a_second_client_and_a_closed_one(served, dev):
    with SimDevice(served[0]) as other:
        assert other.read32(registers(dev).regmap["nic.id"].addr) == NIC_ID
    other.close()                                   # twice is harmless
    with pytest.raises(DeviceError):
        other.read32(0)
    assert registers(dev).read("nic.id") == NIC_ID  # the first client is unaffected


def test_no_card_is_a_clear_error(tmp_path):
    with pytest.raises(DeviceError, match="crossnic sim --serve"):
        SimDevice(tmp_path / "nothing.sock")


def _frame(dst: int | str, tag: int) -> bytes:
    dst = dst if isinstance(dst, str) else mac_text(dst)
    return bytes(Ether(dst=dst, src=mac_text(MAC_A)) / IP(src="10.0.0.1", dst="10.0.0.2")
                 / UDP(sport=tag, dport=9) / bytes(30))


def test_transmit_loop_cable_hairpin_and_interrupts(dev):
    """A frame for the outside leaves port 0, comes back in on port 1 (cable ``other``) and,
    as unknown unicast, lands in the default VNIC's ring; a frame for VNIC B is switched on the
    card. Both arrive in the ring the driver laid out in shared host memory, each announced by
    the ring's interrupt vector, and the transmit head is written back there too."""
    regs = registers(dev)
    cfg = ClassifierConfig(macs=[MacEntry(MAC_A, 0, 0), MacEntry(MAC_B, 0, 1)],
                           vnics={0: VnicSettings(True, Priority.MEDIUM, 1, 0, 0),
                                  1: VnicSettings(True, Priority.MEDIUM, 2, 1, 1)},
                           policy=Policy(unknown_to_default=True, default_vnic=1))
    for path, value in writes(cfg):
        regs.write(path, value)
    size_log2 = 4
    n = 1 << size_log2
    desc, cpl, bufs = dev.alloc(16 * n), dev.alloc(16 * n), dev.alloc(2048 * n, 4096)
    rx = RxRing(1, size_log2, desc.addr, cpl.addr, bufs.addr)
    tdesc, wb, tbufs = dev.alloc(16 * n), dev.alloc(64), dev.alloc(2048 * n, 4096)
    tx = TxRing(3, size_log2, tdesc.addr, wb.addr, tbufs.addr)
    rx.clear_completions(dev.mem_write)
    for path, value in [*rx.setup(irq_count=1), *rx.post(dev.mem_write),
                        *tx.setup(port=0, vnic=0)]:
        regs.write(path, value)
    dev.wait_irq(0)                                 # forget anything older
    outside, to_b = _frame("02:99:00:00:00:01", 1), _frame(MAC_B, 2)
    for path, value in tx.send(dev.mem_write, [outside, to_b]):
        regs.write(path, value)

    got, deadline = [], time.monotonic() + 60
    fired = set()
    while len(got) < 2 and time.monotonic() < deadline:
        fired |= dev.wait_irq(1.0)
        done, doorbell = rx.poll(dev.mem_read)
        got += [data for _, data in done]
        for path, value in doorbell:
            regs.write(path, value)
        regs.write("rx_ring[1].irq_status", 1)
    assert sorted(got) == sorted([outside, to_b])
    assert 1 in fired                               # vector 1: receive ring 1
    assert tx.room(dev.mem_read) == tx.size and tx.head == 2
    assert regs.read("tx_switch.wire") == 1 and regs.read("tx_switch.hairpin") == 1
    assert regs.read("eth0_tx.frames") == 1 and regs.read("eth1_rx.frames_ok") == 1
    for b in (desc, cpl, bufs, tdesc, wb, tbufs):
        dev.free(b)
    for path in ("rx_ring[1].ctrl", "tx_ring[3].ctrl"):
        regs.write(path, 0)


def test_cli_refuses_bad_cables():
    r = subprocess.run([sys.executable, "-m", "crossnic", "sim", "--serve", "--port0", "tap:"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "interface name" in r.stderr
    r = subprocess.run([sys.executable, "-m", "crossnic", "sim", "--serve", "--port1",
                        "udp:1:x"], capture_output=True, text=True)
    assert r.returncode == 2 and "two port numbers" in r.stderr
    r = subprocess.run([sys.executable, "-m", "crossnic", "sim"], capture_output=True, text=True)
    assert r.returncode == 2 and "--out" in r.stderr


def test_bye_stops_the_card_and_cleans_up(served):
    """Last in this module: a client's BYE ends the simulation; the socket and the host-memory
    file go with it, and the launcher exits 0."""
    sock, proc = served
    dev = SimDevice(sock)
    mem = Path(dev.memory_path)
    assert mem.exists()
    dev.shutdown()
    assert proc.wait(60) == 0
    assert not mem.exists() and not sock.exists()
