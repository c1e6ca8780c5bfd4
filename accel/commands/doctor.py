"""``accel doctor``: which tools are present, their versions, and how to install what is missing."""
from __future__ import annotations

import argparse

from .options import add_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="report installed tools, versions and what is missing")
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..toolchain import tool_checks

    rows = tool_checks()
    if args.json:
        from ..cli import print_json

        print_json(rows)
        return 0
    width = max(len(r["tool"]) for r in rows)
    for r in rows:
        status = r["version"] if r["present"] else f"MISSING  -> {r['install']}"
        print(f"{r['tool'].ljust(width)}  {status}  ({r['for']})")
    tools = [r for r in rows if r["tool"] != "cuda gpu"]  # a GPU is optional: Triton runs interpreted without one
    missing = [r["tool"] for r in tools if not r["present"]]
    print(f"{len(tools) - len(missing)} of {len(tools)} tools present" + (f"; missing: {', '.join(missing)}"
                                                                         if missing else ""))
    return 0
