"""A served card's port cabled to a Linux TAP device in a network namespace: the kernel there
is the station at the end of the wire (root needed, as CI runs)."""

import os
import subprocess
import sys
import time

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw

from crossnic.gateware.layouts import Priority
from crossnic.gateware.nic_core import NicCore
from crossnic.host.classifier import ClassifierConfig, MacEntry, Policy, VnicSettings, writes
from crossnic.host.registers import Registers
from crossnic.host.rings import RxRing, TxRing
from crossnic.host.sim_device import SimDevice
from crossnic.host.sim_serve_client import start_card
from crossnic.sim.scenario import mac_text

pytestmark = [
    pytest.mark.xdist_group("tap_card"),
    pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/net/tun"),
                       reason="TAP devices and network namespaces need root"),
]

MAC_CARD = 0x0200_00C0_FF01
CARD_IP, NS_IP = "10.77.0.1", "10.77.0.2"


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=check, capture_output=True, text=True)


@pytest.fixture(scope="module")
def tap_card(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tap")
    tap, ns = f"cnt{os.getpid() % 100000}", f"crossnic-t{os.getpid()}"
    sock = tmp / "card.sock"
    proc = start_card(sock, [f"tap:{tap}", "none"], tmp / "serve.log", memory_mb=16)
    try:
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "set", tap, "netns", ns)
        sh("ip", "-n", ns, "link", "set", tap, "up")
        sh("ip", "-n", ns, "addr", "add", f"{NS_IP}/24", "dev", tap)
        yield sock, tap, ns
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        sh("ip", "netns", "del", ns, check=False)


def test_the_kernel_in_a_namespace_talks_through_the_card(tap_card):
    """A UDP sender in the namespace: the kernel's ARP request crosses the TAP and the port
    into the card's flood ring; the ARP reply the driver posts on a transmit ring reaches the
    namespace's kernel (its neighbour table learns the card's MAC), whose datagram then lands,
    by the MAC table, in the VNIC's own ring."""
    sock, _, ns = tap_card
    with SimDevice(sock) as dev:
        regs = Registers(NicCore().regmap(), dev.read32, dev.write32)
        cfg = ClassifierConfig(macs=[MacEntry(MAC_CARD, 0, 0)],
                               vnics={0: VnicSettings(True, Priority.MEDIUM, 1, 0, 0)},
                               policy=Policy(flood_ring=1))
        for path, value in writes(cfg):
            regs.write(path, value)
        n = 16
        rings = []
        for k in (0, 1):
            desc, cpl, bufs = dev.alloc(16 * n), dev.alloc(16 * n), dev.alloc(2048 * n, 4096)
            ring = RxRing(k, 4, desc.addr, cpl.addr, bufs.addr)
            ring.clear_completions(dev.mem_write)
            for path, value in [*ring.setup(), *ring.post(dev.mem_write)]:
                regs.write(path, value)
            rings.append(ring)
        tdesc, wb, tbufs = dev.alloc(16 * n), dev.alloc(64), dev.alloc(2048 * n, 4096)
        tx = TxRing(0, 4, tdesc.addr, wb.addr, tbufs.addr)
        for path, value in tx.setup(port=0, vnic=0):
            regs.write(path, value)

        # a datagram to the card every half second: the kernel resolves CARD_IP first
        sender = ("import socket, time\n"
                  "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                  "for _ in range(120):\n"
                  f"    s.sendto(b'hello card', ('{CARD_IP}', 7777)); time.sleep(0.5)\n")
        ping = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", sender],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            seen: dict[str, Ether] = {}
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and "echo" not in seen:
                for ring in rings:
                    done, doorbell = ring.poll(dev.mem_read)
                    for path, value in [*doorbell, *ring.post(dev.mem_write)]:
                        regs.write(path, value)
                    for c, data in done:
                        frame = Ether(data)
                        if ARP in frame and frame[ARP].op == 1 and "arp" not in seen:
                            assert ring.index == 1 and c["vnic"] == 0xFF   # flooded
                            seen["arp"] = frame
                            reply = (Ether(dst=frame.src, src=mac_text(MAC_CARD))
                                     / ARP(op=2, hwsrc=mac_text(MAC_CARD), psrc=CARD_IP,
                                           hwdst=frame.src, pdst=NS_IP))
                            for path, value in tx.send(dev.mem_write, [bytes(reply)]):
                                regs.write(path, value)
                        elif UDP in frame and frame[UDP].dport == 7777:
                            assert ring.index == 0 and c["vnic"] == 0        # the VNIC's ring
                            seen["echo"] = frame
                time.sleep(0.05)
        finally:
            ping.kill()
            ping.wait()
        assert "arp" in seen, "no ARP request from the namespace reached the card"
        assert "echo" in seen, "the namespace never sent its datagram to the card's MAC"
        assert seen["echo"][IP].src == NS_IP and seen["echo"][IP].dst == CARD_IP
        assert seen["echo"][Raw].load == b"hello card"           # (then Ethernet padding)
        neigh = sh("ip", "-n", ns, "neigh", "show", CARD_IP).stdout
        assert mac_text(MAC_CARD) in neigh.lower()
        assert regs.read("eth0_rx.frames_ok") >= 2 and regs.read("eth0_tx.frames") >= 1
