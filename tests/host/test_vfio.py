"""The VFIO backend's kernel ABI, checked against the kernel's own header (compiled with the C
compiler), and its errors without a card."""

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from crossnic.host.device import DeviceError
from crossnic.host.vfio import CONSTANTS, IOCTL, STRUCTS, VfioDevice

HEADER = Path("/usr/include/linux/vfio.h")


def _from_header(tmp_path: Path) -> dict[str, int]:
    lines = ["#include <stdio.h>", "#include <stddef.h>", "#include <linux/vfio.h>",
             "int main(void) {"]
    for name in [*IOCTL, *CONSTANTS]:
        lines.append(f'  printf("{name} %lu\\n", (unsigned long)({name}));')
    for name, (_, fields) in STRUCTS.items():
        lines.append(f'  printf("sizeof {name} %lu\\n", (unsigned long)sizeof(struct {name}));')
        for f in fields:
            lines.append(f'  printf("offsetof {name}.{f} %lu\\n", '
                         f'(unsigned long)offsetof(struct {name}, {f}));')
    lines += ["  return 0;", "}"]
    src = tmp_path / "abi.c"
    src.write_text("\n".join(lines) + "\n")
    exe = tmp_path / "abi"
    subprocess.run(["gcc", "-o", str(exe), str(src)], check=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    return {k: int(v) for k, v in (line.rsplit(" ", 1) for line in out.splitlines())}


@pytest.mark.skipif(not HEADER.exists() or not shutil.which("gcc"),
                    reason="needs the kernel's UAPI headers (linux-libc-dev) and gcc")
def test_ioctls_constants_and_structs_match_the_kernel_header(tmp_path):
    want = _from_header(tmp_path)
    for name, value in {**IOCTL, **CONSTANTS}.items():
        assert value == want[name], name
    for name, (fmt, fields) in STRUCTS.items():
        # our prefix of the struct: its fields at the kernel's offsets (newer kernels append
        # fields; argsz tells the kernel which version we speak)
        offsets = [0]
        for code in fmt[1:]:
            offsets.append(offsets[-1] + struct.calcsize("=" + code))
        for f, off in zip(fields, offsets, strict=False):
            assert want[f"offsetof {name}.{f}"] == off, f"{name}.{f}"
        assert struct.calcsize(fmt) <= want[f"sizeof {name}"], name


def test_no_card_is_a_clear_error():
    with pytest.raises(DeviceError, match=r"no PCI device 0000:ff:1f\.7"):
        VfioDevice("0000:ff:1f.7")


def test_a_device_not_bound_to_vfio_is_explained():
    devices = sorted(Path("/sys/bus/pci/devices").glob("*")) if Path(
        "/sys/bus/pci/devices").exists() else []
    bound = [d for d in devices if not (d / "driver").exists()
             or (d / "driver").resolve().name != "vfio-pci"]
    if not bound:
        pytest.skip("no PCI device outside vfio-pci on this machine")
    with pytest.raises(DeviceError, match="not vfio-pci"):
        VfioDevice(bound[0].name)
