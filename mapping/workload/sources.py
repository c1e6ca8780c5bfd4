"""One entry point for every source: a known name, a model directory, or a YAML operator list."""
from __future__ import annotations

from pathlib import Path
from typing import Union

from accel.config import DeviceConfig

from .formats import parse_datatype, precision_for
from .hf import KNOWN_MODELS, checkpoint_formats, resolve_model
from .listing import load_operator_list
from .ops import Workload, WorkloadError
from .transformer import EXPERT_POLICIES, Architecture, build_workload

__all__ = ["load_workload"]


def load_workload(model: str, phase: str, device: DeviceConfig, *, datatype: str = "int8",
                  group_size: Union[int, None] = None, batch: int = 1, prompt: Union[int, None] = None,
                  context: Union[int, None] = None, experts: Union[str, int] = "worst",
                  logits: str = "last") -> tuple[Union[Architecture, None], Workload]:
    """The workload of ``model`` (a known name, a Hugging Face model directory, or a ``.yaml`` operator list).

    Number formats come from ``device`` (:func:`mapping.workload.precision_for`); a mixed ``datatype`` on a directory
    with weights takes each matrix's exact mix from the checkpoint (:func:`mapping.workload.hf.checkpoint_formats`;
    it quantises every matrix, which takes minutes for billions of weights), and the precision's format is the mix
    over the whole model. A YAML list is returned as written (its own
    phase, shapes and precision); the architecture is ``None`` then.
    """
    if isinstance(experts, str) and experts not in EXPERT_POLICIES:   # refused for dense models too, not ignored
        raise WorkloadError(f"experts {experts!r}: must be one of {', '.join(EXPERT_POLICIES)} or a count")
    if model.endswith((".yaml", ".yml")):
        return None, load_operator_list(model)
    arch, ckpt = resolve_model(model)
    formats = None
    if ckpt is not None and len(parse_datatype(datatype)[0]) > 1:
        formats, whole = checkpoint_formats(arch, ckpt, datatype, device.bitserial, group_size)
        precision = precision_for(device, weights=whole)
    else:
        precision = precision_for(device, datatype, group_size)
    source = "" if model in KNOWN_MODELS else f"directory:{Path(model).resolve()}"
    return arch, build_workload(arch, phase, precision=precision, batch=batch, prompt=prompt, context=context,
                                experts=experts, logits=logits, formats=formats, source=source,
                                checkpoint_dtypes=ckpt.dtypes if ckpt is not None else ())
