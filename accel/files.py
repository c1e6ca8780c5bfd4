"""Reading the files a user hands to accel, with one kind of error for every way a file can be wrong.

Every file accel reads (traces, programs, device and operator YAML, build reports, model directories' JSON) goes
through :func:`read_text` (or :func:`read_yaml`, :func:`read_json`): it names the file, decodes it strictly as UTF-8
and reports a bad byte by line and column; YAML and JSON syntax errors carry the line and column too; duplicate keys,
keys that are lists or mappings and nesting too deep to read are refused by name. The error type is the caller's
(``error=ConfigError`` for a device, ``ProgramError`` for a program, ...), so callers keep raising their own
:class:`~accel.errors.AccelError` subclass. Every file accel writes goes through :mod:`accel.outputs`, the other
side: paths checked before a run, files written atomically.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from .errors import AccelError, one_line
from .fmt import value as show

__all__ = ["read_bytes", "decode", "read_text", "StrictLoader", "parse_yaml", "read_yaml", "parse_json", "read_json",
           "MAX_DEPTH"]

#: Deepest nesting of lists and mappings read from YAML or JSON (accel's own files nest a few levels).
MAX_DEPTH = 100


def read_bytes(path: str | Path, what: str, error: type[AccelError] = AccelError) -> bytes:
    """The bytes of ``path``; an unreadable path raises ``error`` naming the file, the reason and the fix.

    Parameters
    ----------
    path:
        The file.
    what:
        What the file should hold, for the message (``"trace"``, ``"device description"``).
    error:
        The :class:`~accel.errors.AccelError` subclass to raise.
    """
    p = Path(path)
    try:
        return p.read_bytes()
    except IsADirectoryError:
        raise error(f"{p}: is a folder, not a {what}; give the path of a {what} file") from None
    except OSError as e:
        raise error(f"{p}: cannot read the {what} ({e.strerror or e}); check the path") from None
    except ValueError:  # a NUL byte in the path
        raise error(f"{show(str(path))}: not a path (it holds a NUL byte); give the path of a {what} file") from None


def decode(raw: bytes, source: str, what: str, error: type[AccelError] = AccelError) -> str:
    """``raw`` as UTF-8 text (a leading byte-order mark dropped); a byte that is not UTF-8, or a NUL byte, raises
    ``error`` at ``source:line:column`` (columns count bytes, from 1)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line, col = _position(raw, e.start)
        raise error(f"{source}:{line}:{col}: byte {raw[e.start]:#04x} is not UTF-8 text; save the {what} as "
                    f"UTF-8") from None
    nul = text.find("\0")
    if nul >= 0:
        line, col = _position(raw, raw.find(b"\0"))
        raise error(f"{source}:{line}:{col}: a NUL byte: this is not a text file; give the {what} in its text "
                    f"form") from None
    return text[1:] if text.startswith("\ufeff") else text


def _position(raw: bytes, offset: int) -> tuple[int, int]:
    return raw.count(b"\n", 0, offset) + 1, offset - (raw.rfind(b"\n", 0, offset) + 1) + 1


def read_text(path: str | Path, what: str, error: type[AccelError] = AccelError) -> str:
    """The text of ``path``, decoded strictly (:func:`read_bytes`, :func:`decode`)."""
    return decode(read_bytes(path, what, error), str(path), what, error)


# --------------------------------------------------------------------------------------------------------------------
# YAML


class _Located(Exception):
    """A rule broken at a YAML node (raised inside the loader, reported with the file by :func:`parse_yaml`)."""

    def __init__(self, node: yaml.Node, message: str) -> None:
        super().__init__(message)
        self.line, self.column = node.start_mark.line + 1, node.start_mark.column + 1


class StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing duplicate keys (PyYAML keeps the last one) and keys that are lists or
    mappings; a merge key (``<<: *base``) may be overridden by a key given in the mapping itself."""


_MERGE = "tag:yaml.org,2002:merge"


def _construct_mapping(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == _MERGE:
            continue
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            raise _Located(key_node, f"a key must be plain text or a number, not a "
                                     f"{'list' if isinstance(key, list) else 'mapping'}; write the key as text")
        line = key_node.start_mark.line + 1
        if key in seen:
            raise _Located(key_node, f"duplicate key {key!r} (first given on line {seen[key]}); give each key once")
        seen[key] = line
    loader.flatten_mapping(node)  # merged keys go first, so the mapping's own keys override them
    return loader.construct_mapping(node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

if getattr(yaml, "__with_libyaml__", False):
    class _CStrictLoader(yaml.CSafeLoader):
        """:class:`StrictLoader`'s rules on libyaml's parser (C: a preset reads in 1 ms instead of 17)."""

    _CStrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
else:
    _CStrictLoader = None


def _depth_ok(node: yaml.Node, source: str, error: type[AccelError]) -> None:
    stack = [(node, 1)]
    while stack:
        n, d = stack.pop()
        if d > MAX_DEPTH:
            raise error(f"{source}:{n.start_mark.line + 1}:{n.start_mark.column + 1}: lists and mappings nested "
                        f"deeper than {MAX_DEPTH} levels; flatten the file")
        if isinstance(n, yaml.SequenceNode):
            stack.extend((c, d + 1) for c in n.value)
        elif isinstance(n, yaml.MappingNode):
            stack.extend((c, d + 1) for kv in n.value for c in kv)


_FLOW = re.compile(r"[\[\]{}'\"#\n\\]")


def _flow_depth_ok(text: str, source: str, error: type[AccelError]) -> None:
    """Refuse flow collections (``[...]``, ``{...}``) nested deeper than :data:`MAX_DEPTH` before PyYAML's scanner,
    whose time grows with the square of the depth, reads them (quoted text and comments are skipped)."""
    depth, quote, comment, skip = 0, "", False, -1
    for m in _FLOW.finditer(text):
        c, i = m.group(), m.start()
        if i == skip:                       # the character after a backslash in double quotes
            continue
        if comment:
            comment = c != "\n"
        elif quote:
            if quote == '"' and c == "\\":
                skip = i + 1
            elif c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or text[i - 1] in " \t\n"):
            comment = True
        elif c in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                line, col = text.count("\n", 0, i) + 1, i - (text.rfind("\n", 0, i) + 1) + 1
                raise error(f"{source}:{line}:{col}: lists and mappings nested deeper than {MAX_DEPTH} levels; "
                            f"flatten the file")
        elif c in "]}":
            depth = max(0, depth - 1)


def parse_yaml(text: str, source: str, error: type[AccelError] = AccelError, shipped: bool = False) -> Any:
    """The data of a YAML document, read strictly (:class:`StrictLoader`); every error names ``source``, and the
    line and column where there is one.

    ``shipped``: a file that ships with accel (a preset), read with the same rules on libyaml's parser where PyYAML
    has it (``tests/test_config.py`` checks that every preset reads the same both ways); should it fail there, it is
    read again as any file, which reports the error."""
    _flow_depth_ok(text, source, error)
    if shipped and _CStrictLoader is not None:
        fast = _CStrictLoader(text)
        try:
            node = fast.get_single_node()
            if node is not None:
                _depth_ok(node, source, error)
                return fast.construct_document(node)
        except Exception:   # the pure-Python reading below names the error as for any file
            pass
        finally:
            fast.dispose()
    try:
        loader = StrictLoader(text)
    except yaml.reader.ReaderError as e:  # a character YAML does not allow
        line = text.count("\n", 0, e.position) + 1
        col = e.position - (text.rfind("\n", 0, e.position) + 1) + 1
        raise error(f"{source}:{line}:{col}: character {e.character:#x} is not allowed in YAML; remove it") from None
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise error(f"{source}: lists and mappings nested too deep to read; flatten the file") from None
        if node is None:
            return None
        _depth_ok(node, source, error)
        return loader.construct_document(node)
    except _Located as e:
        raise error(f"{source}:{e.line}:{e.column}: {e}") from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        place = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
        context = f" ({e.context})" if e.context else ""
        raise error(f"{place}: not valid YAML: {e.problem}{context}; check the indentation, colons and quotes "
                    f"there") from None
    except yaml.YAMLError as e:
        raise error(f"{source}: not valid YAML: {one_line(str(e))}") from None
    finally:
        loader.dispose()


def read_yaml(path: str | Path, what: str, error: type[AccelError] = AccelError, shipped: bool = False) -> Any:
    """The data of a YAML file (:func:`read_text`, :func:`parse_yaml`; ``shipped`` as there)."""
    return parse_yaml(read_text(path, what, error), str(path), error, shipped)


# --------------------------------------------------------------------------------------------------------------------
# JSON


def parse_json(text: str, source: str, error: type[AccelError] = AccelError) -> Any:
    """The data of a JSON text; a syntax error names ``source:line:column``."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise error(f"{source}:{e.lineno}:{e.colno}: not valid JSON ({e.msg})") from None
    except RecursionError:
        raise error(f"{source}: lists and objects nested too deep to read; flatten the file") from None
    stack = [(data, 1)]
    while stack:
        v, d = stack.pop()
        if d > MAX_DEPTH:
            raise error(f"{source}: lists and objects nested deeper than {MAX_DEPTH} levels; flatten the file")
        if isinstance(v, list):
            stack.extend((c, d + 1) for c in v)
        elif isinstance(v, dict):
            stack.extend((c, d + 1) for c in v.values())
    return data


def read_json(path: str | Path, what: str, error: type[AccelError] = AccelError) -> Any:
    """The data of a JSON file (:func:`read_text`, :func:`parse_json`)."""
    return parse_json(read_text(path, what, error), str(path), error)
