"""crossnic: an open FPGA network card with hardware classification and TLS handshake offload.

The distribution maps the project's top-level folders to subpackages: ``crossnic.gateware``
(Amaranth HDL), ``crossnic.host`` (driver), ``crossnic.sim`` (Verilator/cocotb harness),
``crossnic.boards`` (ECP5 board builds) and ``crossnic.constraints`` (timing targets).
"""

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("crossnic")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"
