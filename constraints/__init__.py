"""Timing targets per board, one TOML file each (read by :mod:`crossnic.boards`)."""
