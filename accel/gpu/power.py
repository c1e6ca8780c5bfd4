"""Board power from NVML while kernels run: the GPU side's measured energy.

NVML (``nvidia-ml-py``'s ``pynvml``) reports the board's power draw (``nvmlDeviceGetPowerUsage``, mW, averaged by
the driver over about a second on recent GPUs). :class:`PowerSampler` reads it from a thread every
``interval_s`` while a benchmark runs; the energy of one kernel call is then the mean power over the benchmark times
the kernel's median time — whole-board energy (memory, idle and fans included), which is what a data-centre operator
pays and what the emulated device's energy table is compared with. Where NVML cannot be read (no NVIDIA driver, no
``pynvml``), :func:`nvml_status` says why and nothing is sampled.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, TypeVar

__all__ = ["nvml_status", "PowerSampler", "measure_power"]

T = TypeVar("T")


def _nvml() -> Any:
    import pynvml

    pynvml.nvmlInit()
    return pynvml


def nvml_status(index: int = 0) -> tuple[bool, str]:
    """Whether NVML reads GPU ``index``'s power here, and if not, why (one line)."""
    try:
        nv = _nvml()
    except ImportError:
        return False, "pynvml (nvidia-ml-py) is not installed"
    except Exception as e:  # pynvml.NVMLError: no driver or library
        return False, f"NVML does not start here ({e})"
    try:
        nv.nvmlDeviceGetPowerUsage(nv.nvmlDeviceGetHandleByIndex(index))
    except Exception as e:
        return False, f"NVML cannot read GPU {index}'s power ({e})"
    return True, "NVML board power"


class PowerSampler:
    """Context manager sampling GPU ``index``'s board power every ``interval_s`` seconds; :attr:`mean_w` after it
    closes (W; at least one sample, taken on entry)."""

    def __init__(self, index: int = 0, interval_s: float = 0.005) -> None:
        nv = _nvml()
        self._nv, self._handle, self._interval = nv, nv.nvmlDeviceGetHandleByIndex(index), interval_s
        self._samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self) -> float:
        return self._nv.nvmlDeviceGetPowerUsage(self._handle) / 1e3

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._samples.append(self._read())

    def __enter__(self) -> "PowerSampler":
        self._samples.append(self._read())
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mean_w(self) -> float:
        return sum(self._samples) / len(self._samples)


def measure_power(fn: Callable[[], T], index: int = 0) -> tuple[T, float]:
    """``fn()``'s result and the board's mean power while it ran (W)."""
    with PowerSampler(index) as s:
        out = fn()
    return out, s.mean_w
