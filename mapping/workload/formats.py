"""Weight formats and precisions from a datatype spec and a device's bit-serial unit.

Every number comes from :mod:`accel.numerics` (a datatype's code bits) or :class:`accel.config.BitSerialConfig`
(group size, scale bits, the width of the datatype field, activation and accumulator widths); nothing is re-typed.

Datatype specs
--------------
* one datatype of :data:`accel.config.BITSERIAL_DATATYPES` (``int8``, ``int4``, ``int3``, ``fp4_er_pos``, ...);
* ``mixed``: each group picks one of BitMoD's four FP4 variants by quantisation error (``mixed3``: the four FP3
  variants) — the variants share one code width, so the size is exact without knowing the mix;
* ``mixed:DT,DT,...``: each group picks one of the named datatypes; of different widths, the fractions of groups
  must be given, ``mixed:int8=0.25,int4=0.75``, or counted from a checkpoint
  (:func:`mapping.workload.hf.checkpoint_formats`).

A mixed group also stores its datatype (``BitSerialConfig.dtype_bits``, the weight stream's datatype field); a
single-datatype matrix names its datatype once, not per group.
"""
from __future__ import annotations

from typing import Union

from accel.config import BitSerialConfig, DeviceConfig
from accel.numerics import DATATYPES

from .ops import Precision, WeightFormat, WorkloadError

__all__ = ["MIXED_SETS", "parse_datatype", "weight_format", "precision_for", "mixed_format"]


def _variants(kind: str, bits: int) -> tuple[str, ...]:
    return tuple(n for n, d in DATATYPES.items() if d.kind == kind and d.code_bits == bits)


#: Named mixed sets: BitMoD's FP4 and FP3 variant sets (``mixed_bitmod`` at 4 and 3 bits).
MIXED_SETS: dict[str, tuple[str, ...]] = {"mixed": _variants("fp", 4), "mixed3": _variants("fp", 3)}


def mixed_format(name: str, datatypes: tuple[str, ...], fractions: Union[tuple[float, ...], None],
                 bitserial: BitSerialConfig, group_size: Union[int, None] = None) -> WeightFormat:
    """A weight format over ``datatypes`` with the device's group metadata (``group_size`` overrides its group)."""
    for dt in datatypes:
        if dt not in bitserial.datatypes:
            raise WorkloadError(f"datatype {dt!r}: the device's bit-serial unit does not decode it (it decodes "
                                f"{', '.join(bitserial.datatypes)})")
    g = bitserial.group_size if group_size is None else group_size
    if isinstance(g, bool) or not isinstance(g, int) or g < 1:
        raise WorkloadError(f"group size {g!r}: must be a positive integer (weights per group)")
    return WeightFormat(name, datatypes, fractions, g, bitserial.scale_bits,
                        bitserial.dtype_bits if len(datatypes) > 1 else 0)


def parse_datatype(spec: str) -> tuple[tuple[str, ...], Union[tuple[float, ...], None]]:
    """The datatypes a spec (module docstring) allows and their fractions of groups (``None``: not given)."""
    if spec in DATATYPES:
        return (spec,), None
    if spec in MIXED_SETS:
        return MIXED_SETS[spec], None
    if spec.startswith("mixed:"):
        names, fracs = [], []
        for item in (s.strip() for s in spec[len("mixed:"):].split(",")):
            dt, _, frac = item.partition("=")
            if dt not in DATATYPES:
                raise WorkloadError(f"datatype {dt!r} in {spec!r}: must be one of {', '.join(DATATYPES)}")
            names.append(dt)
            if frac:
                try:
                    fracs.append(float(frac))
                except ValueError:
                    raise WorkloadError(f"fraction {frac!r} of {dt} in {spec!r}: must be a number") from None
        if fracs and len(fracs) != len(names):
            raise WorkloadError(f"weights {spec!r}: give every datatype its fraction of groups or none "
                                f"(mixed:int8=0.25,int4=0.75 or mixed:fp4_er_pos,fp4_er_neg)")
        return tuple(names), tuple(fracs) if fracs else None
    import difflib

    known = [*DATATYPES, *MIXED_SETS]
    close = difflib.get_close_matches(spec, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise WorkloadError(f"datatype {spec!r}{hint}: must be one of {', '.join(known)}, or mixed:DT,DT,...")


def weight_format(spec: str, bitserial: BitSerialConfig, group_size: Union[int, None] = None) -> WeightFormat:
    """The weight format a datatype spec (module docstring) names, on a device with this bit-serial unit."""
    datatypes, fractions = parse_datatype(spec)
    return mixed_format(spec, datatypes, fractions, bitserial, group_size)


def precision_for(device: Union[DeviceConfig, BitSerialConfig], datatype: str = "int8",
                  group_size: Union[int, None] = None, weights: Union[WeightFormat, None] = None) -> Precision:
    """Number formats on a device: weights in ``datatype`` (or the given ``weights`` format); activations and KV
    entries at the bit-serial unit's activation width; biases and norm parameters at its accumulator width (they are
    added to the accumulators)."""
    bs = device.bitserial if isinstance(device, DeviceConfig) else device
    return Precision(weights or weight_format(datatype, bs, group_size), bs.act_bits, bs.act_bits, bs.acc_bits)
