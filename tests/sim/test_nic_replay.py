"""``crossnic sim --nic``: the bundled capture through the whole card, and bad configurations."""

import json

import pytest
from scapy.layers.inet import TCP
from scapy.utils import rdpcap

from crossnic.cli import main
from crossnic.sim.nic_config import DEFAULT_CONFIG, ConfigError, parse


def test_sample_through_the_whole_card(tmp_path, capsys):
    assert main(["sim", "--nic", "--out", str(tmp_path)]) == 0
    assert "19 frames in, 15 delivered" in capsys.readouterr().out
    records = json.loads((tmp_path / "completions.json").read_text())
    counters = json.loads((tmp_path / "counters.json").read_text())
    per_ring = {k: len(rdpcap(str(tmp_path / f"ring{k}.pcap"))) for k in range(8)}
    assert sum(per_ring.values()) == len(records) == counters["rx_dma.frames"] == 15
    assert per_ring[4] == per_ring[5] == per_ring[6] == 1                  # the three flows
    assert counters["flow_hits"] == {"https": 1, "dns": 1, "ssh6": 1}
    assert per_ring[7] == 2 and all(r["vnic"] == 255 for r in records if r["ring"] == 7)
    assert counters["eth0_rx.drop_runt"] == 1 and counters["rx_dma.drop_unknown_unicast"] == 1
    first = rdpcap(str(tmp_path / "ring4.pcap"))[0]
    assert first[TCP].dport == 443
    assert (tmp_path / "completions.csv").read_text().startswith("ring,length,")


@pytest.mark.parametrize("change, message", [
    (lambda d: d["vnics"][0].update(mac="02:00:00"), "not a MAC address"),
    (lambda d: d["vnics"][1].update(mac=d["vnics"][0]["mac"], vlan=0), "already belongs"),
    (lambda d: d["flows"][0].update(ring=8), "flows\\[0\\].ring"),
    (lambda d: d["flows"][1].pop("transport"), "needs a transport"),
    (lambda d: d["flows"][2].update(local_ip="fd00::/200"), "not an address"),
    (lambda d: d["flows"][0].update(colour="red"), "unknown attribute"),
    (lambda d: d["policy"].update(unknown_unicast="flood"), "drop or default"),
    (lambda d: d["vnics"][0].update(priority="urgent"), "low, medium or high"),
])
def test_bad_configurations_are_refused_clearly(change, message):
    doc = json.loads(DEFAULT_CONFIG.read_text())
    change(doc)
    with pytest.raises(ConfigError, match=message):
        parse(doc)


def test_cli_reports_a_bad_config_file(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["sim", "--nic", "--config", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "not JSON" in capsys.readouterr().err
