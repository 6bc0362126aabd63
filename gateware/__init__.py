"""Gateware of the crossnic card, written in Amaranth 0.5.

Every block is a :class:`amaranth.lib.wiring.Component`; packets move on the one packet stream
defined in :mod:`crossnic.gateware.packet`.
"""
