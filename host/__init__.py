"""Host side of crossnic: device backends, driver daemon and the dladm-style CLI (later issues)."""
