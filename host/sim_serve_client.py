"""Start a served card (``crossnic sim --serve``) as a child process and wait until it listens."""

import subprocess
import sys
from pathlib import Path

__all__ = ["start_card", "CardStartError"]


class CardStartError(RuntimeError):
    pass


def start_card(socket_path: Path, ports: list[str], log_path: Path, *, memory_mb: int = 32,
               timeout: float = 1800) -> subprocess.Popen:
    """The simulator process, once its socket answers; its log is ``log_path``."""
    from crossnic.sim.serve import wait_for_socket
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, "-m", "crossnic", "sim", "--serve", "--socket",
                             str(socket_path), "--port0", ports[0], "--port1", ports[1],
                             "--memory-mb", str(memory_mb)],
                            stdout=log, stderr=subprocess.STDOUT)
    log.close()
    if not wait_for_socket(Path(socket_path), timeout, lambda: proc.poll() is None):
        proc.kill()
        proc.wait()
        raise CardStartError(f"the simulated card did not start:\n"
                             f"{Path(log_path).read_text()[-3000:]}")
    return proc
