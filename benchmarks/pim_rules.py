"""The PIM timing rules as the random engine-vs-model suite sees them: how often each row of the rule table is the sole
binding constraint of an issue, and which (configuration, seed) of the suite catches each mutated engine.

Prints JSON. ``--markdown`` prints the tables of docs/pim.md instead; ``--write-docs docs/pim.md`` replaces them there
(between the ``<!-- pim_rules: NAME -->`` and ``<!-- /pim_rules -->`` markers), so the docs are generated, not typed.

    python benchmarks/pim_rules.py [--markdown | --write-docs docs/pim.md]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from accel.interfaces.pim import PIM_TIMING_RULES, rule_codes
from accel.equivalence.pim import EQUIVALENT_MUTANTS, EngineModelSuite, coverage_configs, mutants, suite_bindings, suite_seeds
from docblocks import emit, table


def measure() -> dict:
    cfgs = coverage_configs()
    t = time.perf_counter()
    counts = {c.name: suite_bindings(c, suite_seeds(c)) for c in cfgs}
    bind_s = time.perf_counter() - t
    suite = EngineModelSuite(cfgs)
    t = time.perf_counter()
    caught = [(i, kind, suite.catch(rules)) for i, kind, rules in mutants()]
    mutate_s = time.perf_counter() - t
    codes = rule_codes()
    rows = []
    for i, r in enumerate(PIM_TIMING_RULES):
        rows.append({"row": i, "code": codes[r.rule], "columns": list(r.columns()),
                     "label": f"{r.rule} ({r.level}): {r.columns()[2]} → {r.columns()[3]}",
                     "bindings": {c.name: counts[c.name][i] for c in cfgs},
                     "total": sum(counts[c.name][i] for c in cfgs),
                     "mutants": {kind: (list(by) if by else None) for j, kind, by in caught if j == i}})
    return {"configs": {c.name: {"seeds": len(suite_seeds(c)), "wait_mode_seeds": len(suite.seeds(c))}
                        for c in cfgs},
            "rows": rows, "bindings_s": round(bind_s, 2), "mutants_s": round(mutate_s, 2),
            "model_runs": suite.model_runs}


def rules_table() -> str:
    codes = rule_codes()
    return table(["code", "rule", "level", "preceding", "following", "latency", "options"],
                 [[codes[r.rule], *r.columns()] for r in PIM_TIMING_RULES])


def markdown(res: dict) -> dict[str, str]:
    """The generated sections of docs/pim.md, by marker name."""
    names = list(res["configs"])
    bind = table(["row", *[f"{n} ({res['configs'][n]['wait_mode_seeds']} programs)" for n in names], "total"],
                  [[r["label"], *[r["bindings"][n] for n in names], r["total"]] for r in res["rows"]])
    kinds = sorted({k for r in res["rows"] for k in r["mutants"]}, key=lambda k: (k != "dropped", k != "shortened", k))

    def verdict(r: dict, k: str) -> str:
        if k not in r["mutants"]:
            return "—"
        by = r["mutants"][k]
        if by:
            return f"{by[0]} seed {by[1]}"
        why = EQUIVALENT_MUTANTS.get((r["columns"][0], k))
        return f"equivalent: {why}" if why else "**not caught**"

    mut = table(["row", *kinds], [[r["label"], *[verdict(r, k) for k in kinds]] for r in res["rows"]])
    return {"rules": rules_table(), "bindings": bind, "mutants": mut}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--markdown", action="store_true", help="print the docs tables")
    ap.add_argument("--write-docs", type=Path, help="replace the generated sections of this file")
    args = ap.parse_args()
    res = measure()
    emit(res, "pim_rules", markdown, args.write_docs, args.markdown)


if __name__ == "__main__":
    main()
