"""Simulation harness: Amaranth -> Verilog -> Verilator, driven by cocotb from pytest or the CLI."""
