from amaranth.back import verilog

from crossnic.gateware.width import StreamWidener
from crossnic.sim.tops import SimTop


def test_extra_domains_become_ports():
    from amaranth import DomainRenamer
    inner = DomainRenamer("rx")(StreamWidener(1, 4))
    # DomainRenamer keeps the signature of the component it wraps
    top = SimTop(inner, domains=("rx",))
    text = verilog.convert(top, name="top")
    assert "input rx_clk" in text and "input rx_rst" in text
    assert "posedge rx_clk" in text          # the logic really runs on the new domain
    assert "i__payload" in text and "o__valid" in text
