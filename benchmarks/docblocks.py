"""Generated blocks in the docs: text between ``<!-- TAG: NAME -->`` and ``<!-- /TAG -->`` markers that a benchmark
computes and rewrites (``--write-docs``), so the docs' figures are measured, never typed; tests read them back."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable

__all__ = ["read_block", "write_blocks", "emit", "table"]


def _pattern(tag: str, name: str) -> re.Pattern:
    return re.compile(rf"(<!-- {re.escape(tag)}: {re.escape(name)} -->\n)(.*?)(<!-- /{re.escape(tag)} -->)", re.S)


def read_block(path: Path, tag: str, name: str) -> str:
    """The text of block ``NAME`` of ``TAG`` in ``path`` (without the markers and the newline before the end)."""
    m = _pattern(tag, name).search(Path(path).read_text())
    if m is None:
        raise SystemExit(f"{path}: no '<!-- {tag}: {name} -->' ... '<!-- /{tag} -->' block")
    return m.group(2).removesuffix("\n")


def write_blocks(path: Path, tag: str, blocks: dict[str, str]) -> None:
    """Replace each block ``NAME`` of ``TAG`` in ``path`` with ``blocks[NAME]``."""
    text = Path(path).read_text()
    for name, body in blocks.items():
        pat = _pattern(tag, name)
        if not pat.search(text):
            raise SystemExit(f"{path}: no '<!-- {tag}: {name} -->' ... '<!-- /{tag} -->' block")
        text = pat.sub(lambda m: m.group(1) + body + "\n" + m.group(3), text)
    Path(path).write_text(text)


def table(head: list[str], lines: list[list]) -> str:
    """A markdown table: a header row and one row per line (cells as ``str`` gives them)."""
    out = ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    out += ["| " + " | ".join(str(x) for x in line) + " |" for line in lines]
    return "\n".join(out)


def emit(result: Any, tag: str, markdown: Callable[[Any], dict[str, str]], write_docs: Path | None,
         as_markdown: bool) -> None:
    """A benchmark's output: its generated doc blocks written into ``write_docs`` (``--write-docs``), or its tables
    printed (``--markdown``), or its result as JSON."""
    if write_docs:
        write_blocks(write_docs, tag, markdown(result))
    elif as_markdown:
        print("\n\n".join(markdown(result).values()))
    else:
        print(json.dumps(result, indent=2))
