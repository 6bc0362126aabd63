"""Python reference models of the gateware, used as scoreboards by the tests and benches."""
