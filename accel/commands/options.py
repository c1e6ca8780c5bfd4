"""Options every command spells the same way: the device, counts and seeds, JSON output (docs/cli.md).

* :func:`add_device` adds ``--device DEVICE`` (a preset name or a YAML device file; ``--preset`` is a hidden alias);
  :func:`device_of` loads it.
* :func:`positive` and :func:`natural` are argparse types: whole numbers of at least 1 / at least 0, refused as usage
  errors (exit status 2) naming the value and the rule.
* :func:`add_json` adds ``--json``.
* :func:`add_workload` adds what ``accel models`` and ``accel map`` both ask of a model's step (``--phase``,
  ``--context``, ``--prompt``, ``--batch``, ``--experts``).
"""
from __future__ import annotations

import argparse

from ..config import DeviceConfig, load_preset

__all__ = ["DEFAULT_DEVICE", "HIDDEN_ALIASES", "add_device", "device_of", "positive", "natural", "add_json",
           "add_workload"]

#: The device of commands that need one and are not told which (the GDDR6-AiM preset, the reference PIM device).
DEFAULT_DEVICE = "aim-gddr6"

#: Option strings accepted but not shown in ``--help`` (the help formatter of :mod:`accel.cli` leaves them out).
HIDDEN_ALIASES = frozenset({"--preset"})

_DEVICE_HELP = "device: a preset (accel devices) or a YAML device file"


def add_device(parser: argparse.ArgumentParser, default: str | None = DEFAULT_DEVICE, required: bool = False,
               help: str | None = None) -> None:
    """``--device DEVICE`` (and the hidden alias ``--preset``) on ``parser``; ``help`` follows the standard text
    (say there what a default of None means)."""
    text = _DEVICE_HELP + (f"; {help}" if help else "")
    parser.add_argument("--device", "--preset", dest="device", metavar="DEVICE", default=default,
                        required=required, help=text)


def device_of(args: argparse.Namespace) -> DeviceConfig:
    """The device ``--device`` names (a preset or a YAML file)."""
    return load_preset(args.device)


def _whole(text: str) -> int:
    try:
        return int(text, 0) if text.lower().startswith(("0x", "-0x")) else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def positive(text: str) -> int:
    """A whole number of at least 1 (an argparse type)."""
    v = _whole(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"{v} must be at least 1")
    return v


def natural(text: str) -> int:
    """A whole number of at least 0 (an argparse type; seeds)."""
    v = _whole(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"{v} must be at least 0 (seeds and counts are not negative)")
    return v


def add_json(parser: argparse.ArgumentParser, what: str = "print JSON") -> None:
    parser.add_argument("--json", action="store_true", help=what)


def _experts(text: str) -> str | int:
    """``--experts``: a count (a whole number of at least 1) or a named assumption (the library checks the name)."""
    return positive(text) if text.lstrip("+-").isdigit() else text


def add_workload(parser: argparse.ArgumentParser, prompt_default: str) -> None:
    """The options of one step of a model: ``--phase``, ``--context``, ``--prompt`` (its default described by
    ``prompt_default``), ``--batch`` and ``--experts``."""
    parser.add_argument("--phase", choices=("decode", "prefill"), default="decode",
                        help="the step: one new token per sequence (decode) or the whole prompt (prefill)")
    parser.add_argument("--context", type=positive,
                        help="decode: tokens the new token attends to, itself included (default: the model's "
                             "positions)")
    parser.add_argument("--prompt", type=positive, help=f"prefill: prompt tokens per sequence ({prompt_default})")
    parser.add_argument("--batch", type=positive, default=1, help="sequences processed together")
    parser.add_argument("--experts", type=_experts, default="worst",
                        help="MoE: experts a layer reads: worst, expected, best, or a count")
