from crossnic.sim.samples import sample_frames, sample_path, write_sample


def test_shipped_sample_is_current(tmp_path):
    fresh = tmp_path / "sample.pcap"
    write_sample(fresh)
    assert fresh.read_bytes() == sample_path().read_bytes(), \
        "sim/data/sample.pcap is stale: run python -m crossnic.sim.samples"


def test_sample_covers_wire_sizes():
    sizes = [len(f) for _, f in sample_frames()]
    assert min(sizes) < 60            # one runt
    assert max(sizes) > 1514          # one giant
    assert 1514 in sizes and 60 in sizes
