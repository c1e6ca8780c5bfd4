"""How accel's Triton kernels run: natively on a CUDA GPU, or in Triton's interpreter on CPU tensors.

Triton decides per kernel when the kernel is *decorated* (``@triton.jit`` reads ``TRITON_INTERPRET``), that is when
its module is imported. Every kernel module calls :func:`kernel_mode` before it imports Triton, so the choice is made
once per process, on the first import of a kernel module, never at ``import accel`` or ``import accel.gpu``:

* ``TRITON_INTERPRET=1`` in the environment (or :func:`use_interpreter` called first): the interpreter;
* otherwise a CUDA GPU visible to torch: native;
* otherwise (no GPU): the interpreter, so that a CPU machine can still run every kernel (the GPU fallback of
  functional runs, the tests). Timing needs a real GPU (:func:`require_gpu`).

Errors a caller can cause are :class:`GpuError` subclasses (one line naming the value, the rule and the fix).
"""
from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any, Iterable, Sequence

from ..errors import AccelError

__all__ = ["GpuError", "NoGpuError", "KernelInputError", "use_interpreter", "kernel_mode", "kernel_device",
           "require_gpu", "bench_device", "check_tensor", "next_pow2", "time_ms"]

_ENV = "TRITON_INTERPRET"
_TRUE = ("1", "true", "on", "yes")  # what Triton's own env_bool accepts
_mode: str | None = None


class GpuError(AccelError):
    """A GPU-side call cannot run as asked."""


class NoGpuError(GpuError):
    """A call that needs a CUDA GPU (timing, native kernels) on a machine or in a mode without one."""


class KernelInputError(GpuError, ValueError):
    """A kernel's input breaks its contract (dtype, shape, layout, device, format); raised before any launch."""


def _env_interpret() -> bool:
    return os.environ.get(_ENV, "").strip().lower() in _TRUE


def use_interpreter() -> None:
    """Run the kernels in Triton's interpreter, on CPU tensors, even where a GPU exists.

    Must be called before the first kernel module is imported (the mode is fixed then).

    Raises
    ------
    GpuError
        The kernels were already loaded natively in this process.
    """
    if _mode == "native":
        raise GpuError("the Triton kernels were already loaded natively in this process; call "
                       "accel.gpu.use_interpreter() (or set TRITON_INTERPRET=1) before the first kernel is imported")
    os.environ[_ENV] = "1"


def kernel_mode() -> str:
    """``"native"`` or ``"interpreter"``: how this process runs the kernels (fixed on first call).

    Kernel modules call this before importing Triton; nothing else needs to.
    """
    global _mode
    if _mode is None:
        missing = [m for m in ("torch", "triton") if importlib.util.find_spec(m) is None]
        if missing:
            raise GpuError(f"the GPU kernels need {' and '.join(missing)}, which this Python lacks; ./run installs "
                           f"them (requirements.txt: torch==2.13.0, triton==3.8.0)")
        triton_loaded = "triton" in sys.modules
        if _env_interpret():
            _mode = "interpreter"
        else:
            import torch

            if torch.cuda.is_available():
                _mode = "native"
            else:
                os.environ[_ENV] = "1"
                _mode = "interpreter"
        if _mode == "interpreter" and triton_loaded:
            _check_interpreted_triton()
    elif _mode == "native" and _env_interpret():
        raise GpuError("TRITON_INTERPRET was set after the Triton kernels were loaded natively; set it before the "
                       "first kernel is imported (or start a new process)")
    return _mode


def _check_interpreted_triton() -> None:
    """Make Triton's own library functions (``tl.zeros``, ``tl.sum``, ...) interpretable when ``triton`` was imported
    before ``TRITON_INTERPRET`` was set (torch's ``FlopCounterMode`` imports it, for one).

    Triton decorates them when it is imported, as compiled-only functions unless the interpreter was asked for; an
    interpreted kernel cannot call those. Each one in the ``triton.language`` modules is re-wrapped as Triton itself
    would have wrapped it (an ``InterpretedFunction`` of the same Python function), which is what importing Triton
    with ``TRITON_INTERPRET=1`` gives. If that does not take (another Triton version), the error says what to do.
    """
    global _mode
    import triton.language.standard as standard
    from triton.runtime.interpreter import InterpretedFunction
    from triton.runtime.jit import JITFunction

    if isinstance(standard.zeros, InterpretedFunction):
        return
    wrapped: dict[int, Any] = {}
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "triton.language" or name.startswith("triton.language.")):
            continue
        for attr, value in list(vars(module).items()):
            if isinstance(value, JITFunction):
                setattr(module, attr, wrapped.setdefault(id(value), InterpretedFunction(value.fn)))
    if not isinstance(standard.zeros, InterpretedFunction):
        _mode = None
        raise GpuError("triton was imported before Triton's interpreter was chosen (TRITON_INTERPRET must be set "
                       "before `import triton`); import accel.gpu's kernels, or call accel.gpu.use_interpreter(), "
                       "before importing triton, or start Python with TRITON_INTERPRET=1")


def kernel_device() -> Any:
    """The torch device kernel inputs must live on: ``cuda`` when native, ``cpu`` in the interpreter."""
    import torch

    return torch.device("cuda" if kernel_mode() == "native" else "cpu")


def require_gpu(what: str, alternative: str = "") -> None:
    """Raise :class:`NoGpuError` unless kernels run natively on a CUDA GPU (``what`` names the call,
    ``alternative`` is appended to the fix)."""
    if kernel_mode() != "native":
        import torch

        gpu = torch.cuda.is_available()
        why = ("the kernels run in Triton's interpreter (TRITON_INTERPRET=1)" if gpu
               else "no CUDA GPU is visible to torch (torch.cuda.is_available() is False)")
        raise NoGpuError(f"{what} needs a CUDA GPU with native Triton, but {why}; run it on a GPU machine"
                         + (" without TRITON_INTERPRET" if gpu else "") + alternative)


def bench_device() -> Any:
    """The CUDA device the ``bench_*`` functions time on (:class:`NoGpuError` without native kernels on a GPU)."""
    require_gpu("timing a kernel")
    import torch

    return torch.device("cuda")


def next_pow2(n: int) -> int:
    """Smallest power of two >= ``n`` (>= 1)."""
    return 1 << max(0, int(n) - 1).bit_length()


def _dtype_names(dtypes: Iterable[Any]) -> str:
    return ", ".join(str(d).replace("torch.", "") for d in dtypes)


def check_tensor(t: Any, name: str, dtypes: Sequence[Any], shape: Sequence[int | None] | None = None,
                 ndim: int | Sequence[int] | None = None) -> None:
    """Check one kernel input: a torch tensor of one of ``dtypes``, contiguous, on :func:`kernel_device`.

    ``shape`` entries of ``None`` match any size; ``ndim`` (an int or the allowed ranks) is checked when ``shape``
    is not given.

    Raises
    ------
    KernelInputError
        Naming the input, what it is, the rule and the fix.
    """
    import torch

    if not isinstance(t, torch.Tensor):
        raise KernelInputError(f"{name} is a {type(t).__name__}, not a torch.Tensor; pass a tensor "
                               f"(accel.gpu.ops converts numpy arrays)")
    if t.dtype not in dtypes:
        raise KernelInputError(f"{name} has dtype {str(t.dtype).replace('torch.', '')}; it must be "
                               f"{_dtype_names(dtypes)} (convert it with .to(...))")
    if shape is not None:
        if t.dim() != len(shape) or any(s is not None and s != d for s, d in zip(shape, t.shape)):
            want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
            raise KernelInputError(f"{name} has shape {tuple(t.shape)}; it must be {want}")
    elif ndim is not None:
        ranks = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if t.dim() not in ranks:
            allowed = (f"{ranks[0]} to {ranks[-1]}" if isinstance(ndim, range) and len(ranks) > 2
                       else " or ".join(map(str, ranks)))
            raise KernelInputError(f"{name} has {t.dim()} dimensions (shape {tuple(t.shape)}); it must have "
                                   f"{allowed}")
    if t.numel() == 0:
        raise KernelInputError(f"{name} is empty (shape {tuple(t.shape)}); give at least one element")
    if not t.is_contiguous():
        raise KernelInputError(f"{name} is not contiguous (strides {t.stride()} for shape {tuple(t.shape)}); "
                               f"pass {name}.contiguous()")
    dev = kernel_device()
    if t.device.type != dev.type:
        fix = ".cuda()" if dev.type == "cuda" else ".cpu() (the kernels run in Triton's interpreter on CPU)"
        raise KernelInputError(f"{name} is on {t.device}; the kernels run on {dev.type}: move it with {fix}")



def time_ms(fn: Any, warmup_ms: int = 25, rep_ms: int = 100) -> dict[str, float]:
    """Time ``fn()`` on the GPU with :func:`triton.testing.do_bench` (L2 flushed before every run).

    Returns
    -------
    ``{"median_ms", "p20_ms", "p80_ms"}`` in milliseconds over the timed runs.

    Raises
    ------
    NoGpuError
        Kernels do not run natively on a CUDA GPU here (timing in the interpreter would mean nothing).
    """
    require_gpu("timing a kernel")
    import triton.testing

    p20, med, p80 = triton.testing.do_bench(fn, warmup=warmup_ms, rep=rep_ms, quantiles=[0.2, 0.5, 0.8])
    return {"median_ms": float(med), "p20_ms": float(p20), "p80_ms": float(p80)}
