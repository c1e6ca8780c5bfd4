"""Workloads as plain data: the JSON form of :meth:`Workload.to_dict` read back, and YAML operator lists.

Both are read strictly, with the rules of ``accel/config.py``: an unknown or missing key, a value of the wrong type
and (in YAML) a duplicate key are errors naming the file, the key path (``blocks[0][3].m``) and the rule.

A YAML operator list has the keys of the JSON form, and a few conveniences for writing it by hand::

    model: tiny-decoder
    phase: decode            # prefill | decode
    batch: 1
    tokens: 1                # new tokens per sequence
    context: 128             # tokens the last new token attends to
    precision: {device: aim-gddr6, datatype: int4}   # or the full form: weights, act_bits, kv_bits, param_bits
    layers: 12               # every layer runs block 0 (or a list: the block index of every layer)
    block:                   # one block (or blocks: a list of blocks)
      - {op: vector, name: ln, kind: layer_norm, rows: 1, width: 768, params: ["h.{layer}.ln.weight"]}
      - {op: gemm, name: qkv, m: 1, k: 768, n: 2304, weight: "h.{layer}.qkv.weight"}
      ...

An operator's number formats (``weights``, ``act_bits``, ``kv_bits``, ``param_bits``) default to the precision's
(``weights`` may also be a datatype spec such as ``int4``); ``bias``/``expert`` default to none, ``layout`` to
``nk``, ``inputs`` to 1, ``out_width`` to ``width``, ``params`` to none, ``param_elems`` to the params' widths,
``causal`` to false; ``prologue``, ``epilogue`` and ``tensors`` (derived from the operators) may be left out.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Union

from accel.config import _build  # the one strict builder of the project (unknown/missing keys, types)
from accel.errors import AccelError, ConfigError, at
from accel.files import read_yaml

from .ops import (OPERATOR_CLASSES, Operator, Precision, Tensor, WeightFormat, Workload, WorkloadError,
                  operator_tensors, plain)

__all__ = ["workload_from_dict", "load_operator_list"]

_OPTIONAL: dict[str, Any] = {"bias": None, "expert": None, "layout": "nk", "inputs": 1, "params": [],
                             "causal": False}
_TOP = ("model", "phase", "batch", "tokens", "context", "precision", "prologue", "block", "blocks", "layers",
        "epilogue", "tensors", "source", "moe", "checkpoint_dtypes")


def _err(where: str, message: str) -> WorkloadError:
    return WorkloadError(f"{where}: {message}" if where else message)


def _precision(data: Any, key: str) -> Precision:
    if isinstance(data, dict) and "device" in data:
        extra = [k for k in data if k not in ("device", "datatype", "group_size")]
        if extra:
            raise ConfigError(f"{key}: unknown key {extra[0]!r}; with a device the allowed keys are device, "
                              f"datatype, group_size")
        from accel.config import load_preset

        from .formats import precision_for

        try:
            return precision_for(load_preset(str(data["device"])), str(data.get("datatype", "int8")),
                                 data.get("group_size"))
        except WorkloadError as e:
            raise ConfigError(f"{key}: {e}") from None
    return _build(Precision, data, key)


def _operator(data: Any, key: str, precision: Precision) -> Operator:
    if not isinstance(data, dict):
        raise ConfigError(f"{key}: an operator must be a mapping with an 'op' key, not {data!r}")
    tag = data.get("op")
    if tag not in OPERATOR_CLASSES:
        raise ConfigError(f"{key}.op = {tag!r}: must be one of {', '.join(OPERATOR_CLASSES)}")
    cls = OPERATOR_CLASSES[tag]
    fields = set(cls.__dataclass_fields__)
    d = {k: v for k, v in data.items() if k != "op"}
    defaults = {"weights": precision.weights, "act_bits": precision.act_bits, "kv_bits": precision.kv_bits,
                "param_bits": precision.param_bits, **_OPTIONAL, "out_width": d.get("width"),
                "param_elems": len(d.get("params") or ()) * (d.get("width") or 0)}
    d.update({k: v for k, v in defaults.items() if k in fields and k not in d})
    if isinstance(d.get("weights"), str):
        d["weights"] = _spec_format(d["weights"], f"{key}.weights", precision)
    if isinstance(d.get("weights"), WeightFormat):
        d["weights"] = plain(d["weights"])
    try:
        return _build(cls, d, key)
    except WorkloadError as e:
        raise ConfigError(f"{key}: {e}") from None


def _spec_format(spec: str, key: str, precision: Precision) -> WeightFormat:
    """A datatype spec on one operator: same group metadata as the precision's format."""
    from accel.numerics import DATATYPES

    w = precision.weights
    if spec == w.name:
        return w
    if spec not in DATATYPES:
        raise ConfigError(f"{key} = {spec!r}: an operator's datatype must be one of {', '.join(DATATYPES)} (or "
                          f"the precision's {w.name!r}; give other mixed formats in full)")
    return WeightFormat(spec, (spec,), None, w.group_size, w.scale_bits, 0)


def _section(data: Any, key: str, precision: Precision) -> tuple[Operator, ...]:
    if data is None:
        return ()
    if not isinstance(data, list):
        raise ConfigError(f"{key}: must be a list of operators")
    return tuple(_operator(v, f"{key}[{i}]", precision) for i, v in enumerate(data))


def _build_workload(data: Any, where: str) -> Workload:
    if not isinstance(data, dict):
        raise ConfigError(f"top level: must be a mapping of keys to values, not {data!r}")
    unknown = [k for k in data if k not in _TOP]
    if unknown:
        raise ConfigError(f"top level: unknown key {unknown[0]!r}; allowed keys are {', '.join(_TOP)}")
    for k in ("model", "phase", "batch", "tokens", "context", "precision", "layers"):
        if k not in data:
            raise ConfigError(f"top level: missing key {k!r}; an operator list gives model, phase, batch, tokens, "
                              f"context, precision and layers (docs/mapping.md, 'Sources')")
    if ("block" in data) == ("blocks" in data):
        raise ConfigError("top level: give exactly one of 'block' (one layer body) and 'blocks' (a list of bodies)")
    precision = _precision(data["precision"], "precision")
    raw_blocks = [data["block"]] if "block" in data else data["blocks"]
    if not isinstance(raw_blocks, list) or not raw_blocks:
        raise ConfigError("blocks: must be a non-empty list of operator lists")
    blocks = tuple(_section(b, f"blocks[{i}]" if "blocks" in data else "block", precision)
                   for i, b in enumerate(raw_blocks))
    layers = data["layers"]
    if isinstance(layers, int) and not isinstance(layers, bool):
        if len(blocks) != 1 or layers < 1:
            raise ConfigError(f"layers = {layers!r}: a count needs exactly one block and at least 1 layer; with "
                              f"several blocks give the block index of every layer")
        layers = [0] * layers
    if not isinstance(layers, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in layers):
        raise ConfigError(f"layers = {layers!r}: must be a count or a list of block indices")
    prologue = _section(data.get("prologue"), "prologue", precision)
    epilogue = _section(data.get("epilogue"), "epilogue", precision)
    if "tensors" in data:
        if not isinstance(data["tensors"], list):
            raise ConfigError("tensors: must be a list of {name, shape}")
        tensors = tuple(_build(Tensor, t, f"tensors[{i}]") for i, t in enumerate(data["tensors"]))
    else:
        placed = ([(None, op) for op in prologue] + [(i, op) for i, b in enumerate(layers) if 0 <= b < len(blocks)
                                                     for op in blocks[b]] + [(None, op) for op in epilogue])
        tensors = operator_tensors(placed)
    dtypes = data.get("checkpoint_dtypes") or []
    scalars = {k: data[k] for k in ("model", "phase", "source", "moe") if k in data}
    for k, v in scalars.items():
        if not isinstance(v, str):
            raise ConfigError(f"{k} = {v!r}: must be a string")
    for k in ("batch", "tokens", "context"):
        if isinstance(data[k], bool) or not isinstance(data[k], int):
            raise ConfigError(f"{k} = {data[k]!r}: must be an integer")
    try:
        return Workload(data["model"], data["phase"], data["batch"], data["tokens"], data["context"], precision,
                        prologue, blocks, tuple(layers), epilogue, tensors, data.get("source", where),
                        data.get("moe", ""), tuple((str(a), str(b)) for a, b in dtypes))
    except WorkloadError as e:
        raise ConfigError(f"top level: {e}") from None


def workload_from_dict(data: Any) -> Workload:
    """A :class:`Workload` from its plain-data form (the JSON of :meth:`Workload.to_dict`), strictly."""
    try:
        return _build_workload(data, "dict")
    except ConfigError as e:
        raise WorkloadError(str(e)) from None


def load_operator_list(path: Union[str, Path]) -> Workload:
    """A :class:`Workload` from a YAML operator list (module docstring), strictly."""
    data = read_yaml(path, "operator list", WorkloadError)
    try:
        return _build_workload(data, f"yaml:{path}")
    except AccelError as e:  # a ConfigError of a key, or a WorkloadError of the whole
        raise at(WorkloadError(str(e)), str(path)) from None
