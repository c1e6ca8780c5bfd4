"""Programs for the FPGA top: PIM command words with their data words, and a GEMV laid out as such a program.

A program is a list of :class:`Step` (one ``PIM`` command word of :mod:`accel.isa` and its data words: one column
per ``WR``/``WRGB`` element); each step becomes one ``EXEC`` request. On disk it is the text form that
``accel emulate`` runs (:func:`accel.traces.parse_text_program`)::

    ACT all_banks=1 row=3
    WRGB col=0 count=2 data=0x0102,0x0304
    MAC all_banks=1 col=0 count=2
    RDMAC all_banks=1

:func:`gemv_steps` turns :func:`accel.mapping.gemv.gemv_plan` into a program the board can run: the plan's
host preloads of DRAM rows become ``ACT``/``WR``/``PRE`` commands (the board's banks are only reachable through
commands), followed by the plan's own commands.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from accel.config import DeviceConfig
from accel.errors import AccelError
from accel.files import read_text
from accel.interfaces.pim import column_word
from accel.isa import PimOp, encode

__all__ = ["Step", "steps_of", "read_program", "gemv_steps", "random_gemv", "beats_of", "expected_beats",
           "command_elements"]


@dataclass(frozen=True)
class Step:
    """One ``EXEC`` request: a command word and its data words."""

    word: int
    data: tuple[int, ...] = ()


def _columns(data: Any) -> tuple[int, ...]:
    """WR/WRGB data (column words, or a ``count x column_bits / 8`` array of bytes) -> column words."""
    if data is None:
        return ()
    if isinstance(data, np.ndarray) and data.ndim == 2:
        return tuple(column_word(row) for row in data)
    return tuple(int(v) for v in data)


def command_elements(word: int, banks: int) -> tuple[PimOp, int]:
    """A PIM command word's op and the elements it issues (``RDMAC all_banks=1``: every bank; else ``count``, 0 = 1)."""
    from accel.isa import decode

    cmd = decode(word)
    op = cmd.op
    if op == PimOp.RDMAC and cmd.fields.get("all_banks"):
        return op, banks
    return op, max(1, cmd.fields.get("count", 0))


def steps_of(device: DeviceConfig, program: Sequence[tuple[int, Any]]) -> list[Step]:
    """``(word, data)`` pairs (as the engine runs them) -> steps, with WR/WRGB data as column words (data left out
    of a WR/WRGB are zeros, as in ``accel emulate``)."""
    p = device.pim
    steps = []
    for word, data in program:
        cols = _columns(data)
        op, n = command_elements(int(word), p.banks)
        if op in (PimOp.WR, PimOp.WRGB) and not cols:
            cols = (0,) * n
        steps.append(Step(int(word), cols))
    return steps


def read_program(path: str | Path, device: DeviceConfig) -> list[Step]:
    """A program file in the text form of ``accel emulate`` -> steps."""
    from accel.traces import parse_text_program

    text = read_text(path, "program", AccelError)
    return steps_of(device, parse_text_program(text, source=str(path)))


def expected_beats(device: DeviceConfig, steps: Sequence[Step]) -> list[int]:
    """The read beats of ``steps`` in the emulator's functional channel engine, in order."""
    from accel.emulator.engine import DeviceEngine

    eng = DeviceEngine(device, functional=True)
    eng.run([(s.word, list(s.data) or None) for s in steps])
    return [w for _, w in eng.channels[0].reads]


def beats_of(words: Sequence[int], per_beat: int) -> list[int]:
    """Response words -> read beats (``per_beat`` little-endian 64-bit words each)."""
    if len(words) % per_beat:
        raise AccelError(f"{len(words)} result words are not whole beats of {per_beat} words")
    return [sum(int(w) << (64 * i) for i, w in enumerate(words[j:j + per_beat]))
            for j in range(0, len(words), per_beat)]


def gemv_steps(device: DeviceConfig, w: np.ndarray, x: np.ndarray, dtypes: np.ndarray | None = None,
               scales: np.ndarray | None = None) -> tuple[Any, list[Step]]:
    """``y = W x`` on the device's one channel: the plan (for :meth:`~accel.mapping.gemv.GemvPlan.results`)
    and the program, weights written through the command bus."""
    from accel.mapping.gemv import gemv_plan
    p = device.pim
    if p.channels != 1:
        raise AccelError(f"device {device.name!r} has {p.channels} channels; a board runs one")
    plan = gemv_plan(device, w, x, "rows", dtypes, scales)
    steps: list[Step] = []
    for _, bank, row, buf in plan.preload:
        cols = _columns(np.asarray(buf))
        steps.append(Step(encode("pim", PimOp.ACT, bank=bank, row=row)))
        steps.append(Step(encode("pim", PimOp.WR, bank=bank, col=0, count=p.columns), cols))
        steps.append(Step(encode("pim", PimOp.PRE, bank=bank)))
    return plan, steps + steps_of(device, plan.program)


def random_gemv(device: DeviceConfig, m: int, k: int, seed: int) -> dict[str, Any]:
    """A random GEMV for the device: weights (codes of random per-group datatypes for bit-serial lanes), scales,
    activations, the plan, the program and the golden ``y``."""
    from accel.mapping.gemv import golden_gemv, random_operands

    w, x, dtypes, scales = random_operands(device, np.random.default_rng(seed), m, k)
    plan, steps = gemv_steps(device, w, x, dtypes, scales)
    return dict(w=w, x=x, dtypes=dtypes, scales=scales, plan=plan, steps=steps,
                golden=golden_gemv(device, w, x, dtypes, scales))
