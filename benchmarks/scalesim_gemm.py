"""Run SCALE-Sim v3 on GEMM shapes and print its counts as JSON lines (the source of the golden table in
``tests/test_array_gemm.py`` and of the shape list in ``docs/attention.md``).

SCALE-Sim is never a dependency of this project: run this file with the Python of a separate venv::

    python3 -m venv /tmp/scalesim-venv && /tmp/scalesim-venv/bin/pip install scalesim 'numpy<2.4'
    /tmp/scalesim-venv/bin/python benchmarks/scalesim_gemm.py M K N ROWS COLS DATAFLOW [M K N ROWS COLS DATAFLOW ...]

Each shape runs in its own temporary directory with a GEMM topology (``Layer, M, N, K``), a configuration of
``ROWS`` x ``COLS`` PEs, 64 kB SRAMs and ``InterfaceBandwidth: CALC`` (compute-only, no stalls). Output fields:
``total_cycles`` (SCALE-Sim's ``Total Cycles``: the index of the last cycle), ``stall_cycles``, ``overall_cycles``
(``Total Cycles (incl. prefetch)``, which adds its DRAM model), ``util`` (its ``Overall Util %``) and the wall time.
"""
import contextlib
import io
import json
import os
import sys
import tempfile
import time

from scalesim.scale_sim import scalesim

CFG = """[general]
run_name = run

[architecture_presets]
ArrayHeight:    {R}
ArrayWidth:     {C}
IfmapSramSzkB:    64
FilterSramSzkB:   64
OfmapSramSzkB:    64
IfmapOffset:    0
FilterOffset:   10000000
OfmapOffset:    20000000
Bandwidth : 10
Dataflow : {df}
MemoryBanks:   1
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 10
IfmapSRAMBankNum: 10
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 10
FilterSRAMBankNum: 10
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40

[run_presets]
InterfaceBandwidth: CALC
UseRamulatorTrace: False
"""


def run(M: int, K: int, N: int, R: int, C: int, df: str) -> dict:
    d = tempfile.mkdtemp(prefix="scalesim-")
    cfg = os.path.join(d, "scale.cfg")
    with open(cfg, "w") as f:
        f.write(CFG.format(R=R, C=C, df=df))
    topo = os.path.join(d, "gemm.csv")
    with open(topo, "w") as f:
        f.write(f"Layer, M, N, K,\nl0, {M}, {N}, {K},\n")  # SCALE-Sim drops the field after the last comma
    lay = os.path.join(d, "layout.csv")  # required by its loader, unused without custom layouts
    with open(lay, "w") as f:
        f.write("Layer, a, b, c, d, e, f, g, h,\nl0, 1, 1, 1, 1, 1, 1, 1, 1,\n")
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        s = scalesim(save_disk_space=True, verbose=False, config=cfg, topology=topo, layout=lay, input_type_gemm=True)
        s.run_scale(top_path=d)
    dt = time.perf_counter() - t0
    items = s.runner.single_layer_sim_object_list[0].get_compute_report_items()
    return dict(M=M, K=K, N=N, R=R, C=C, df=df, overall_cycles=int(items[0]), total_cycles=int(items[1]),
                stall_cycles=int(items[2]), util=float(items[3]), seconds=round(dt, 3))


if __name__ == "__main__":
    a = sys.argv[1:]
    if not a or len(a) % 6:
        sys.exit(__doc__)
    for i in range(0, len(a), 6):
        M, K, N, R, C = map(int, a[i:i + 5])
        try:
            print(json.dumps(run(M, K, N, R, C, a[i + 5])), flush=True)
        except Exception as e:  # SCALE-Sim divides by its cycle count: a 1x1x1 OS GEMM on 1x1 crashes
            print(json.dumps(dict(M=M, K=K, N=N, R=R, C=C, df=a[i + 5], error=repr(e))), flush=True)
