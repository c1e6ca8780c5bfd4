"""The package's layers stay as ARCHITECTURE.md draws them: no module imports a higher layer, and ``rtl/`` and
``emulator/`` never import each other.

Every module of the ``accel`` namespace (the folders of ``setup.py``'s ``FOLDERS``) is parsed with ``ast``; every
import (module level or inside a function, absolute or relative) of an ``accel`` module is checked against the layer
of both ends. Layers, lowest first:

0. ground: ``accel/`` config, isa, program, numerics, datatypes (the weight datatypes numerics re-exports), errors,
   files (reading users' files), outputs (writing them: checked paths, atomic files), fmt (number formats), progress
   (progress bars and long steps), energy (the energy formula), rows (the report's per-operator row), interfaces,
   traces (the trace parsers), presets;
1. ``rtl/`` and ``emulator/``, side by side, never each other;
2. ``mapping/``, ``fpga/``, the equivalence harness ``accel/equivalence/``, ``accel/gpu/`` (Triton kernels and the
   roofline the mapper's fallback reads), ``accel/report.py``, ``accel/plots.py``, ``accel/perfetto.py``,
   ``accel/timeline.py``, ``accel/toolchain.py``;
3. the CLI: ``accel/cli.py``, ``accel/commands/``.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GROUND = {"config", "isa", "program", "numerics", "datatypes", "errors", "files", "outputs", "fmt", "progress",
          "energy", "rows", "interfaces", "traces", "presets"}
LAYER_NAMES = {0: "ground", 1: "rtl/ and emulator/", 2: "mapping/, fpga/, equivalence harness, report",
               3: "the CLI"}
#: (importer, imported) edges allowed for now, each with the change that removes it.
KNOWN: set[tuple[str, str]] = set()


def _folders() -> dict[str, str]:
    """``setup.py``'s FOLDERS: package name -> top-level folder."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "FOLDERS" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("setup.py defines no FOLDERS")


def _modules() -> dict[str, Path]:
    """Module name -> file, for every module of the namespace (packages by their ``__init__.py``)."""
    out = {}
    for package, folder in _folders().items():
        base = ROOT / folder
        nested = [f for p, f in _folders().items() if p.startswith(package + ".")]
        for path in sorted(base.rglob("*.py")):
            rel = path.relative_to(base)
            if rel.parts[0] in nested or "__pycache__" in rel.parts:
                continue  # a nested package of FOLDERS (accel.rtl inside accel) maps to its own folder
            parts = list(rel.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([package, *parts])] = path
    return out


def layer(module: str) -> int | None:
    parts = module.split(".")
    sub = parts[1] if len(parts) > 1 else None
    if sub is None or sub in GROUND:
        return 0
    if sub in ("rtl", "emulator"):
        return 1
    if sub in ("mapping", "fpga", "equivalence", "gpu", "report", "plots", "perfetto", "timeline", "toolchain"):
        return 2
    if sub in ("cli", "commands"):
        return 3
    return None


def _imports(module: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, int]]:
    """``(imported accel module, line)`` of every import in the file, resolved to the longest known module."""
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module
            names = [prefix] + [f"{prefix}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            if not (name == "accel" or name.startswith("accel.")):
                continue
            parts = name.split(".")
            while ".".join(parts) not in modules and len(parts) > 1:
                parts.pop()
            target = ".".join(parts)
            if target != module and (target, node.lineno) not in found:
                found.append((target, node.lineno))
    return found


def _violation(src: str, dst: str) -> str | None:
    ls, ld = layer(src), layer(dst)
    if ld > ls:
        return f"layer {ls} ({LAYER_NAMES[ls]}) must not import layer {ld} ({LAYER_NAMES[ld]})"
    if {(src.split(".") + [""])[1], (dst.split(".") + [""])[1]} == {"rtl", "emulator"}:
        return "rtl/ and emulator/ never import each other (share what both need through accel/interfaces/)"
    return None


def test_every_module_has_a_layer():
    missing = [m for m in _modules() if layer(m) is None]
    assert not missing, f"modules outside every layer (add them to tests/test_layers.py): {missing}"


def test_no_module_imports_a_higher_layer():
    modules = _modules()
    bad, used = [], set()
    for module, path in modules.items():
        for target, line in _imports(module, path, modules):
            rule = _violation(module, target)
            if rule is None:
                continue
            if (module, target) in KNOWN:
                used.add((module, target))
                continue
            bad.append(f"{path.relative_to(ROOT)}:{line}: {module} imports {target}: {rule}")
    assert not bad, "layering violations:\n" + "\n".join(bad)
    stale = KNOWN - used
    assert not stale, f"known exceptions no longer needed (delete them from KNOWN): {sorted(stale)}"


def test_the_check_sees_function_level_and_relative_imports():
    """The parser resolves what the rules need: relative imports in packages and modules, imports in functions."""
    modules = _modules()
    imports = {t for t, _ in _imports("accel.equivalence.gemm", modules["accel.equivalence.gemm"], modules)}
    assert {"accel.config", "accel.interfaces.gemm", "accel.equivalence.registry", "accel.emulator.units.gemm",
            "accel.rtl.gemm"} <= imports
    assert _violation("accel.emulator.units.gemm", "accel.rtl.gemm") is not None
    assert _violation("accel.config", "accel.report") is not None
    assert _violation("accel.fpga.top", "accel.rtl.pim") is None
    assert "accel.rtl.gemm" in modules and "accel.interfaces.packing" in modules and "accel" in modules
