"""Long fuzz run over every file format accel reads and the command line (the targets of tests/fuzz_targets.py).

    python scripts/fuzz.py [--examples 20000] [--seed 0] [TARGET ...]

The examples are shared among the targets in proportion to the suite's counts (tests/test_fuzz.py); each target
runs with a random seed, so a run explores new inputs (``--seed`` repeats one). Prints one JSON object: per target the
examples run, how many worked and how many were refused with a one-line AccelError, the seconds taken, and the first
uncaught exception with the input that caused it (hypothesis's shrunk example), if any. Exit status 1 if any target
found one.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import seed as hypothesis_seed  # noqa: E402

from fuzz_targets import TARGETS  # noqa: E402
from test_fuzz import EXAMPLES  # noqa: E402


def run_target(name: str, examples: int, seed: int) -> dict:
    strategy, target = TARGETS[name]
    counts: Counter[str] = Counter()

    @hypothesis_seed(seed)
    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def run(inp):
        with tempfile.TemporaryDirectory() as tmp:
            counts[target(inp, Path(tmp))] += 1

    t0 = time.perf_counter()
    failure = None
    try:
        run()
    except Exception as e:  # the first uncaught exception, shrunk by hypothesis (its notes hold the input)
        failure = {"exception": f"{type(e).__name__}: {e}"[:2000],
                   "where": traceback.format_exception(e)[-2].strip()[:500],
                   "input": " ".join(getattr(e, "__notes__", []))[:4000]}
    return {"target": name, "examples": sum(counts.values()), "worked": counts["ok"], "refused": counts["error"],
            "seconds": round(time.perf_counter() - t0, 1), "failure": failure}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("targets", nargs="*", metavar="TARGET",
                    help=f"targets to run (default: all of {', '.join(TARGETS)})")
    ap.add_argument("--examples", type=int, default=20000, help="examples in all (default: 20000)")
    ap.add_argument("--seed", type=int, default=None, help="seed of the run (default: random)")
    args = ap.parse_args()
    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown:
        ap.error(f"unknown target {unknown[0]!r}; targets are {', '.join(TARGETS)}")
    names = args.targets or sorted(TARGETS)
    seed = args.seed if args.seed is not None else int(time.time())
    weight = sum(EXAMPLES[n] for n in names)
    results = [run_target(n, max(1, round(args.examples * EXAMPLES[n] / weight)), seed + i)
               for i, n in enumerate(names)]
    total = {"examples": sum(r["examples"] for r in results), "seed": seed,
             "uncaught": sum(r["failure"] is not None for r in results), "targets": results}
    print(json.dumps(total, indent=2))
    return 1 if total["uncaught"] else 0


if __name__ == "__main__":
    sys.exit(main())
