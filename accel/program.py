"""The program: one command stream per unit instance of a device, with explicit cross-stream dependencies.

A :class:`Program` is an ordered list of :class:`Stream` s, each named after the unit that runs it: ``pim0`` ..
``pimN-1`` (PIM channels), ``vector`` (the vector unit), ``array`` (the attention array), ``link`` (the data
mover); with several devices every name has a ``dK.`` prefix (``d1.pim3``). A stream holds 64-bit command words
(:mod:`accel.isa`) of its unit's family and of the SYNC family, and data words for the PIM commands that carry them
(WR, WRGB: one column word per element). SYNC commands order streams: ``SIGNAL token=t`` announces event (stream,
t) once every earlier command of the stream has completed; the k-th ``WAIT stream=s token=t`` of a stream waits
for the k-th ``SIGNAL token=t`` of stream ``s`` (``s`` is an index into the program's stream list; the text form
names it); ``MARK id=n`` says "operator n starts here"; ``REPEAT times=N words=W`` runs the next ``W`` words (unit
commands) ``N`` times in a row. Run-length commands (``count`` > 1) and repeats mean their expanded per-command
stream.

Besides the streams a program carries the ``device`` it was made for (a preset name or an inline device
description), ``devices`` (count), ``placement`` (tensor -> ``[channel, bank, row_lo, row_hi, col_lo, col_hi]``
boxes), ``operators`` (marker id -> facts about the operator: name, kind, layer, ...) and ``meta`` (model, phase,
context, ...).

Two forms, exact round trip between them (docs/mapping.md, "Program format"):

* text: header lines (``device``, ``devices``, ``meta``, ``operator``, ``placement``), then per stream a ``stream
  NAME`` line and one command per line in the accel text syntax (``MAC all_banks=1 col=0 count=64``, ``WAIT
  stream=link token=3``, ``XFER src=pim0 dst=vector bytes=512``, ``LAYERNORM length=1600 src=0 src2=4 dst=8``, or a
  raw ``0x...`` word); ``#`` starts a comment;
* binary (``.npz``): ``words_<i>`` (uint64) per stream, ``data_<i>_index``/``data_<i>_count``/``data_<i>_bytes``
  for its data words, and ``program`` (a JSON string with the names and the rest).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .config import DeviceConfig, device_from_dict, load_preset
from .errors import AccelError, EncodingError, at
from .files import read_text
from .fmt import value as show
from .interfaces import vector as vec_iface
from .interfaces.link import endpoint_code, endpoint_name
from .isa import OPS, TABLES, AttnOp, Endpoint, Family, LinkOp, PimOp, SyncOp, VectorOp, check_device_fits, encode
from .outputs import write_atomic, write_text_atomic

__all__ = ["ProgramError", "DeadlockError", "Stream", "Program", "ProgramBuilder", "StreamBuilder", "UNIT_FAMILY",
           "is_program_file", "parse_stream_name", "parse_command", "RUN", "SIGNAL", "WAIT", "MARK", "stream_items",
           "item_table", "sync_table", "repeats", "deadlock_message"]

FORMAT = "accel-program"
VERSION = 1

#: The command family each unit kind executes (every stream may also hold SYNC commands).
UNIT_FAMILY: dict[str, Family] = {"pim": Family.PIM, "vector": Family.VECTOR, "array": Family.ATTN,
                                  "link": Family.LINK, "net": Family.LINK}

#: How the engines and :meth:`Program.validate` name a command in their messages.
_COMMAND_IN_MESSAGE = re.compile(r"stream (?P<stream>\S+) command (?P<index>\d+)\b")
_NAME = re.compile(r"(?:d(?P<dev>\d+)\.)?(?P<kind>pim|vector|array|link|net)(?P<ch>\d+)?")
_HEADERS = ("device", "devices", "meta", "operator", "placement")


class ProgramError(AccelError, ValueError):
    """A program breaks a rule: malformed text or file, an unknown stream, a word its stream's unit cannot run, a
    WAIT for an event that never happens, an operand outside a buffer, ..."""


class DeadlockError(AccelError):
    """Every stream with work left waits for an event of another stream that waits: ``blocked`` maps each such
    stream's name to ``(producer name, token, k)`` (it waits for the k-th SIGNAL, counting from 1)."""

    def __init__(self, message: str, blocked: dict[str, tuple[str, int, int]]) -> None:
        super().__init__(message)
        self.blocked = blocked


def is_program_file(path: str | Path) -> bool:
    """True for a ``.npz`` file and for text whose first line that is not a comment is a program header or a
    ``stream`` line (a PIM-only trace starts with a command)."""
    path = Path(path)
    if path.suffix == ".npz":
        return True
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, ValueError):
        return False  # the trace reader names the problem
    for raw in text.splitlines():
        toks = raw.split("#", 1)[0].split()
        if toks:
            return toks[0] in _HEADERS + ("stream",)
    return False


def parse_stream_name(name: str) -> tuple[int, str, int]:
    """``(device, kind, channel)`` of a stream name (``channel`` is -1 for units that are not PIM channels)."""
    m = _NAME.fullmatch(name)
    if m is None or (m["kind"] == "pim") != (m["ch"] is not None):
        raise ProgramError(f"stream name {show(name)} is not a unit: names are pim0 .. pimN-1, vector, array, link, "
                           f"net (the interconnect port), with a dK. prefix for device K of several (d1.pim3)")
    return int(m["dev"] or 0), m["kind"], int(m["ch"]) if m["ch"] is not None else -1


@dataclass
class Stream:
    """One unit's command stream: its ``name`` (:func:`parse_stream_name`), command ``words`` (uint64) and, by
    command index, the data words (column words, ints) of PIM WR/WRGB commands (missing data are zeros).
    ``lines``: the text form's line of each command, when the stream was read from text (not compared)."""

    name: str
    words: np.ndarray
    data: dict[int, list[int]] = field(default_factory=dict)
    lines: list[int] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        self.words = np.asarray(self.words, dtype=np.uint64).reshape(-1)
        self.device_index, self.kind, self.channel = parse_stream_name(self.name)
        self._derived: dict[str, Any] = {}
        self._derived_of: Any = None

    def field(self, family: Family, name: str) -> np.ndarray:
        """Field ``name`` of the ``family`` table in every word (int64; meaningful where the word is of that
        family)."""
        off, width = TABLES[family].offsets()[name]
        return ((self.words >> np.uint64(off)) & np.uint64((1 << width) - 1)).astype(np.int64)

    def derived(self, key: str, make: Any) -> Any:
        """``make(self)``, computed once while ``words`` is the same array (the engines and the validation share
        what they derive from a stream's words)."""
        if self._derived_of is not self.words:
            self._derived, self._derived_of = {}, self.words
        if key not in self._derived:
            self._derived[key] = make(self)
        return self._derived[key]

    @property
    def families(self) -> np.ndarray:
        return self.derived("families", lambda s: s.field(Family.PIM, "family"))

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Stream) and self.name == other.name and np.array_equal(self.words, other.words)
                and {k: list(v) for k, v in self.data.items()} == {k: list(v) for k, v in other.data.items()})


# --------------------------------------------------------------------------------------------------------------------
# One command line (shared with the PIM-only trace form of accel/traces.py)


def _fields(toks: list[str], names: set[str], where: str, aliases: dict[str, str]) -> tuple[dict[str, str], Any]:
    out: dict[str, str] = {}
    data = None
    for t in toks:
        if "=" not in t:
            raise ProgramError(f"{where}: {show(t)} must be key=value (keys: {', '.join(sorted(names))})")
        k, v = t.split("=", 1)
        k = aliases.get(k, k)
        if k not in names and k != "data":
            raise ProgramError(f"{where}: unknown field {show(k)}; fields are {', '.join(sorted(names))}")
        if k in out or (k == "data" and data is not None):
            raise ProgramError(f"{where}: field {show(k)} is given twice")
        if k == "data":
            try:
                data = [int(x, 0) for x in v.split(",") if x]
            except ValueError:
                raise ProgramError(f"{where}: {show(t)}: data must be integers (0x... words) separated by commas") \
                    from None
            if any(x < 0 for x in data):
                raise ProgramError(f"{where}: {show(t)}: data words must not be negative")
            continue
        out[k] = v
    return out, data


def _int(where: str, key: str, value: str) -> int:
    try:
        return int(value, 0)
    except ValueError:
        raise ProgramError(f"{where}: {show(key + '=' + value)}: the value must be an integer (decimal or 0x...)") \
            from None


def parse_command(toks: list[str], kind: str, where: str, streams: dict[str, int] | None = None,
                  channel: int = 0) -> tuple[int, list[int] | None]:
    """One command line, split into tokens, in the text form of a ``kind`` stream -> ``(word, data)``.

    ``kind`` is a unit kind (``pim``, ``vector``, ``array``, ``link``); SYNC commands are accepted when ``streams``
    (stream name -> index, for WAIT) is given. ``channel`` is the default channel field of PIM commands."""
    if re.fullmatch(r"0[xX][0-9a-fA-F]+", toks[0]) and len(toks) == 1:
        word = int(toks[0], 16)
        if word >> 64:
            raise ProgramError(f"{where}: command word {show(toks[0])} is wider than 64 bits; a command word is "
                               f"64 bits (16 hex digits)")
        return word, None
    name = toks[0].upper()
    family = UNIT_FAMILY[kind]
    if streams is not None and name in SyncOp.__members__ and name != "NOP":
        family = Family.SYNC
    ops = OPS[family]
    if name not in ops.__members__:
        sync = " (SIGNAL, WAIT, MARK and REPEAT need a program with stream headers)" \
            if streams is None and name in SyncOp.__members__ else ""
        allowed = ", ".join(o.name for o in ops) + ("; SIGNAL, WAIT, MARK, REPEAT" if streams is not None else "")
        raise ProgramError(f"{where}: {show(toks[0])} is not a {family.name} command{sync}; a {kind} stream takes "
                           f"{allowed} (or a 0x... command word)")
    names = {n for n, _ in TABLES[family].fields}
    repeat = family == Family.SYNC and name == "REPEAT"
    if repeat:
        names = {"times", "words"}
    raw, data = _fields(toks[1:], names, where, {"ch": "channel"} if family == Family.PIM else {})
    if repeat:
        missing = [k for k in ("times", "words") if k not in raw]
        if missing:
            raise ProgramError(f"{where}: REPEAT needs times=N (repetitions) and words=W (the words repeated); "
                               f"{missing[0]} is missing")
        raw = {"token": raw["times"], "id": raw["words"]}
    if data is not None and not (family == Family.PIM and ops[name] in (PimOp.WR, PimOp.WRGB)):
        raise ProgramError(f"{where}: only WR and WRGB carry data words")
    values: dict[str, int] = {}
    for k, v in raw.items():
        if family == Family.SYNC and k == "stream":
            if v not in (streams or {}):
                raise ProgramError(f"{where}: WAIT stream={show(v)}: no such stream in this program; streams are "
                                   f"{', '.join(streams or {}) or 'none'}")
            values[k] = streams[v]
        elif family == Family.LINK and k in ("src", "dst") and not v[:1].isdigit():
            try:
                values[k] = endpoint_code(v)
            except EncodingError as e:
                raise ProgramError(f"{where}: {e}") from None
        else:
            values[k] = _int(where, k, v)
    if values.get("count", 1) == 0:
        raise ProgramError(f"{where}: count=0: a run has at least one element; write count=1 or leave count out "
                           f"(a single command)")
    if family == Family.PIM:
        values.setdefault("channel", channel)
    try:
        word = encode(family, name, **values)
    except EncodingError as e:
        raise ProgramError(f"{where}: {e}") from None
    if data is not None:
        n = max(1, values.get("count", 0))
        if len(data) != n:
            raise ProgramError(f"{where}: {name} of {n} column(s) needs {n} data words, got {len(data)}")
    return word, data


_FAMILY_FIELD = TABLES[Family.PIM].offsets()["family"]
_CHANNEL = np.uint64(((1 << TABLES[Family.PIM].width("channel")) - 1)
                     << TABLES[Family.PIM].offsets()["channel"][0])
#: Fields printed even when zero, for readability.
_ALWAYS: dict[tuple[Family, int], tuple[str, ...]] = {
    (Family.SYNC, SyncOp.SIGNAL): ("token",), (Family.SYNC, SyncOp.WAIT): ("stream", "token"),
    (Family.SYNC, SyncOp.MARK): ("id",), (Family.LINK, LinkOp.XFER): ("src", "dst", "bytes"),
    (Family.SYNC, SyncOp.REPEAT): ("token", "id"),
    **{(Family.VECTOR, int(o)): ("length", "src", "dst") for o in VectorOp if o != VectorOp.NOP},
}


def _format(word: int, channel: int, names: list[str], data: list[int] | None) -> str:
    """The text form of one word of a stream whose PIM channel is ``channel`` (inverse of :func:`parse_command`)."""
    fam = Family((word >> _FAMILY_FIELD[0]) & ((1 << _FAMILY_FIELD[1]) - 1))
    table = TABLES[fam]
    values = table.decode(word)
    op = OPS[fam](values.pop("op"))
    values.pop("family")
    parts = [op.name]
    if fam == Family.SYNC and op == SyncOp.REPEAT:
        return f"REPEAT times={values['token']} words={values['id']}"
    always = _ALWAYS.get((fam, int(op)), ())
    for k, v in values.items():
        if fam == Family.PIM and k == "channel" and v == channel:
            continue  # implied by the stream
        if not v and k not in always:
            continue
        if fam == Family.SYNC and k == "stream":
            parts.append(f"stream={names[v]}" if v < len(names) else f"stream={v}")
        elif fam == Family.LINK and k in ("src", "dst"):
            parts.append(f"{k}={endpoint_name(v)}")
        else:
            parts.append(f"{k}={v}")
    if data is not None:
        parts.append("data=" + ",".join(f"{w:#x}" for w in data))
    return " ".join(parts)


# --------------------------------------------------------------------------------------------------------------------
# Stream items: runs of unit commands between SYNC commands

RUN, SIGNAL, WAIT, MARK = range(4)


def _cumcount(keys: np.ndarray) -> np.ndarray:
    """For each entry, how many earlier entries have the same key (0 for the first)."""
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    start = np.concatenate([[0], np.nonzero(sk[1:] != sk[:-1])[0] + 1])
    first = np.repeat(start, np.diff(np.concatenate([start, [len(sk)]])))
    out = np.empty(len(keys), dtype=np.int64)
    out[order] = np.arange(len(keys)) - first
    return out


_TOKEN_BITS = TABLES[Family.SYNC].width("token")


def sync_table(s: Stream) -> tuple[np.ndarray, ...]:
    """Positions, ops, tokens, producers, ids of a stream's SYNC words, and each one's occurrence index k (the k-th
    SIGNAL of its token, the k-th WAIT on its producer's token; from 0)."""
    return s.derived("sync_table", _make_sync_table)


def _make_sync_table(s: Stream) -> tuple[np.ndarray, ...]:
    pos = np.nonzero(s.families == int(Family.SYNC))[0]
    w = s.words[pos]
    f = TABLES[Family.SYNC].offsets()

    def get(name: str) -> np.ndarray:
        off, width = f[name]
        return ((w >> np.uint64(off)) & np.uint64((1 << width) - 1)).astype(np.int64)

    op, tok, prod, ident = get("op"), get("token"), get("stream"), get("id")
    key = np.where(op == SyncOp.WAIT, ((prod + 1) << _TOKEN_BITS) | tok, tok)
    key = np.where((op == SyncOp.WAIT) | (op == SyncOp.SIGNAL), key, -1 - np.arange(len(op)))
    return pos, op, tok, prod, ident, _cumcount(key)


def item_table(s: Stream) -> tuple[np.ndarray, np.ndarray]:
    """The stream as items (:func:`stream_items`), as an ``n x 4`` int64 array, and the index of the word each item
    starts at (a SYNC item its own word, a run its first command; computed once per stream's words)."""
    return s.derived("item_table", _make_item_table)


def _make_item_table(s: Stream) -> tuple[np.ndarray, np.ndarray]:
    pos, op, tok, prod, ident, k = sync_table(s)
    n = len(s.words)
    rep = op == SyncOp.REPEAT
    covered = pos + 1 + np.where(rep, ident, 0)             # a REPEAT covers its body: its items follow it
    lo = np.concatenate([[0], covered[:-1]]).astype(np.int64)
    gap = pos > lo                                        # unit commands before the SYNC word: a plain run
    own = np.isin(op, (SyncOp.SIGNAL, SyncOp.WAIT, SyncOp.MARK, SyncOp.REPEAT))   # SYNC NOPs are dropped
    tail = int(covered[-1]) if len(pos) else 0
    count = gap.astype(np.int64) + own
    at = np.cumsum(count) - count
    total = int(count.sum()) + (tail < n)
    items = np.zeros((total, 4), dtype=np.int64)
    word = np.zeros(total, dtype=np.int64)
    g = at[gap]
    items[g, 0], items[g, 1], items[g, 2] = RUN, lo[gap], pos[gap]
    word[g] = lo[gap]
    o = (at + gap)[own]
    op_o, pos_o, tok_o, prod_o, ident_o, k_o = (a[own] for a in (op, pos, tok, prod, ident, k))
    kind = np.select([op_o == SyncOp.SIGNAL, op_o == SyncOp.WAIT, op_o == SyncOp.MARK], [SIGNAL, WAIT, MARK], RUN)
    items[o, 0] = kind
    items[o, 1] = np.select([kind == SIGNAL, kind == WAIT, kind == MARK], [tok_o, prod_o, ident_o], pos_o + 1)
    items[o, 2] = np.select([kind == SIGNAL, kind == WAIT, kind == RUN], [k_o, tok_o, pos_o + 1 + ident_o], 0)
    items[o, 3] = np.select([kind == WAIT, kind == RUN], [k_o, tok_o], 0)
    word[o] = pos_o
    if tail < n:
        items[-1] = (RUN, tail, n, 0)
        word[-1] = tail
    return items, word


def stream_items(program: "Program", i: int) -> list[tuple[int, int, int, int]]:
    """The stream as items in order: ``(RUN, lo, hi, reps)`` for unit commands ``lo .. hi - 1`` (run ``reps`` times
    in a row by a REPEAT; 0 for a plain run: once), ``(SIGNAL, token, k, 0)``, ``(WAIT, producer, token, k)`` (the
    k-th WAIT of this stream on that event, from 0), ``(MARK, id, 0, 0)``; SYNC NOPs are dropped."""
    items = item_table(program.streams[i])[0]
    return list(zip(*(items[:, j].tolist() for j in range(4))))


def repeats(s: Stream) -> np.ndarray:
    """How many times each word of a stream runs (a REPEAT's body words its ``times``, every other word once)."""
    out = np.ones(len(s.words), dtype=np.int64)
    pos = np.nonzero(s.families == int(Family.SYNC))[0]
    op = s.field(Family.SYNC, "op")[pos]
    for p in pos[op == SyncOp.REPEAT].tolist():
        w = int(s.words[p])
        times = (w >> TABLES[Family.SYNC].offsets()["token"][0]) & ((1 << _TOKEN_BITS) - 1)
        words = (w >> TABLES[Family.SYNC].offsets()["id"][0]) & ((1 << TABLES[Family.SYNC].width("id")) - 1)
        out[p + 1:p + 1 + words] = times
    return out


def _ordinal(k: int) -> str:
    return f"{k}{'th' if 10 <= k % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(k % 10, 'th')}"


def deadlock_message(names: list[str], blocked: dict[int, tuple[int, int, int]]) -> DeadlockError:
    """The error both system models raise when every stream with work left waits (``blocked``: stream index ->
    ``(producer index, token, k from 0)``)."""
    parts = [f"{names[s]} waits for {names[p]} token {t} (its {_ordinal(k + 1)} SIGNAL token={t})"
             for s, (p, t, k) in sorted(blocked.items())]
    return DeadlockError("the program deadlocks: " + "; ".join(parts) + "; each waits for a stream that waits: "
                         "reorder the SIGNALs and WAITs so that the dependencies have no cycle",
                         {names[s]: (names[p], t, k + 1) for s, (p, t, k) in blocked.items()})


# --------------------------------------------------------------------------------------------------------------------


@dataclass
class Program:
    """A multi-stream program (module docstring). ``device`` is a preset name, a YAML path or an inline device
    description (a mapping, as in a preset file); None leaves the choice to the caller."""

    streams: list[Stream]
    device: str | dict[str, Any] | None = None
    devices: int = 1
    placement: dict[str, list[list[int]]] = field(default_factory=dict)
    operators: dict[int, dict[str, Any]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    #: The file the program was read from (errors found while running it name it), None for one built in memory.
    source: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        seen: dict[str, int] = {}
        for i, s in enumerate(self.streams):
            if s.name in seen:
                raise ProgramError(f"stream {s.name!r} appears twice (streams {seen[s.name]} and {i}); give each "
                                   f"unit one stream")
            seen[s.name] = i
        self._index = seen

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.streams]

    def index(self, name: str) -> int:
        """Index of the stream named ``name`` (the ``stream`` field of a WAIT on it)."""
        if name not in self._index:
            raise ProgramError(f"no stream {name!r} in this program; streams are {', '.join(self.names) or 'none'}")
        return self._index[name]

    def stream(self, name: str) -> Stream:
        return self.streams[self.index(name)]

    def resolve_device(self, override: str | None = None) -> DeviceConfig:
        """The device to run on: ``override`` (a preset name or YAML path) if given, else the program's own."""
        if override is not None:
            return load_preset(override)
        try:
            if self.device is None:
                raise ProgramError("the program names no device; give one (--device PRESET) or add a 'device "
                                   "PRESET' line to it")
            return device_from_dict(self.device) if isinstance(self.device, dict) else load_preset(self.device)
        except AccelError as e:
            raise self.locate(e) from None

    def locate(self, error: AccelError) -> AccelError:
        """``error`` with the place in :attr:`source` that caused it in front: ``file:line`` of the command it
        records (:func:`accel.errors.caused_by`) or names (``stream pim0 command 5: ...``) when the program was read
        from text, else the file; returns it unchanged for a program built in memory."""
        if self.source is None:
            return error
        command = error.command
        if command is None:
            m = _COMMAND_IN_MESSAGE.match(str(error.args[0]) if error.args else "")
            if m is not None:
                command = (m["stream"], int(m["index"]))
        if command is not None and command[0] in self._index:
            lines = self.streams[self._index[command[0]]].lines
            if lines is not None and 0 <= command[1] < len(lines):
                return at(error, f"{self.source}:{lines[command[1]]}")
        return at(error, self.source)

    # ---- validation -------------------------------------------------------------------------------------------------
    def validate(self, device: DeviceConfig) -> None:
        """Raise :class:`ProgramError` (naming the stream, the command index, the value and the rule) unless every
        stream is a unit of ``device`` and every word is one its unit can run, WAITs name events that happen, and
        every operand fits its unit."""
        check_device_fits(device)
        if not self.streams:
            raise ProgramError("the program has no streams; a program holds one 'stream NAME' section per unit "
                               "(stream pim0, then its commands)")
        p = device.pim
        signals: dict[tuple[int, int], int] = {}
        waits = []          # per stream: (positions, producers, tokens, k) of its WAITs
        checked: dict[bytes, Stream] = {}
        for i, s in enumerate(self.streams):
            if s.device_index >= self.devices:
                raise ProgramError(f"stream {s.name}: device {s.device_index} does not exist (the program has "
                                   f"devices = {self.devices})")
            if self.devices > 1 and not s.name.startswith("d"):
                raise ProgramError(f"stream {s.name}: a program of {self.devices} devices names every stream with "
                                   f"its device (d0.{s.name})")
            if s.kind == "pim" and s.channel >= p.channels:
                raise ProgramError(f"stream {s.name}: device {device.name} has {p.channels} channels "
                                   f"(pim0 .. pim{p.channels - 1})")
            if s.kind == "array" and device.attention is None:
                raise ProgramError(f"stream {s.name}: device {device.name} has no attention array")
            if s.kind == "pim":
                # a PIM stream equal to one checked already apart from its channel field needs only that field
                key = np.where(s.families == int(Family.PIM), s.words & ~_CHANNEL, s.words).tobytes()
                if key in checked and not s.data:
                    self._check_channel(s)
                else:
                    checked[key] = s
                    self._check_words(i, s, device)
            else:
                self._check_words(i, s, device)
            pos, op, tok, prod, ident, k = sync_table(s)
            self._check_repeats(s, pos, op, tok, ident)
            sel = op == SyncOp.SIGNAL
            for t, n in zip(*np.unique(tok[sel], return_counts=True)):
                signals[(i, int(t))] = int(n)
            sel = op == SyncOp.WAIT
            waits.append((pos[sel], prod[sel], tok[sel], k[sel]))
        names = self.names
        for i, (pos, prod, tok, k) in enumerate(waits):
            for c, pr, t, kk in zip(pos.tolist(), prod.tolist(), tok.tolist(), k.tolist()):
                if pr >= len(self.streams):
                    raise ProgramError(f"stream {names[i]} command {c}: WAIT stream={pr}: the program has "
                                       f"{len(names)} streams (0 .. {len(names) - 1})")
                if pr == i:
                    raise ProgramError(f"stream {names[i]} command {c}: WAIT on its own stream (token {t}) can "
                                       f"never be met: a stream's commands run in order")
                have = signals.get((pr, t), 0)
                if kk >= have:
                    raise ProgramError(f"stream {names[i]} command {c}: WAIT stream={names[pr]} token={t} waits "
                                       f"for its {_ordinal(kk + 1)} SIGNAL token={t}, but {names[pr]} signals "
                                       f"token {t} {have} time{'s' if have != 1 else ''}")

    @staticmethod
    def _check_repeats(s: Stream, pos: np.ndarray, op: np.ndarray, times: np.ndarray, words: np.ndarray) -> None:
        """A REPEAT's body: at least one word, inside the stream, no SYNC word in it (checked for all at once; the
        first that breaks a rule is named)."""
        sel = np.nonzero(op == SyncOp.REPEAT)[0]
        nxt = np.append(pos, len(s.words) + 1)[sel + 1]   # the SYNC word after each REPEAT
        bad = (times[sel] < 1) | (words[sel] < 1) | (pos[sel] + words[sel] > len(s.words) - 1) | \
            (nxt <= pos[sel] + words[sel])
        for j in sel[bad][:1].tolist():
            p, t, w = int(pos[j]), int(times[j]), int(words[j])
            where = f"stream {s.name} command {p}: REPEAT times={t} words={w}"
            if t < 1 or w < 1:
                raise ProgramError(f"{where}: repeats at least one word at least once (times and words >= 1)")
            if p + w > len(s.words) - 1:
                raise ProgramError(f"{where}: the stream has {len(s.words) - p - 1} words after it")
            if j + 1 < len(pos) and pos[j + 1] <= p + w:
                raise ProgramError(f"{where}: command {int(pos[j + 1])} inside its body is a SYNC command; a "
                                   f"repeated body holds unit commands only")

    @staticmethod
    def _check_channel(s: Stream) -> None:
        ch = s.field(Family.PIM, "channel")
        bad = np.nonzero((s.families == int(Family.PIM)) & (ch != s.channel))[0]
        if len(bad):
            c = int(bad[0])
            raise ProgramError(f"stream {s.name} command {c}: channel field {int(ch[c])}: commands of stream "
                               f"{s.name} address channel {s.channel}")

    def _check_words(self, i: int, s: Stream, device: DeviceConfig) -> None:
        where = f"stream {s.name}"
        w = s.words
        fam = s.families
        own = UNIT_FAMILY[s.kind]
        bad = np.nonzero((fam != int(own)) & (fam != int(Family.SYNC)))[0]
        if len(bad):
            c = int(bad[0])
            code = int(fam[c])
            what = Family(code).name if code in {int(f) for f in Family} else f"family {code}"
            raise ProgramError(f"{where} command {c}: word {int(w[c]):#018x} is a {what} command; a {s.kind} "
                               f"stream holds {own.name} and SYNC commands only")
        for f in (own, Family.SYNC):
            t = TABLES[f]
            sel = fam == int(f)
            op = s.field(f, "op")
            bad = np.nonzero(sel & ((op >= len(OPS[f])) | ((w >> np.uint64(t.bits)) != 0)))[0]
            if len(bad):
                c = int(bad[0])
                raise ProgramError(f"{where} command {c}: word {int(w[c]):#018x} is not a {f.name} command (op "
                                   f"{int(op[c])}, bits above {t.bits} must be zero)")
        pim = fam == int(Family.PIM)
        if own == Family.PIM:
            self._check_channel(s)
            op, row = s.field(Family.PIM, "op"), s.field(Family.PIM, "row")
            bad = np.nonzero(pim & (op == PimOp.ACT) & (row >= device.pim.rows))[0]
            if len(bad):
                c = int(bad[0])
                raise ProgramError(f"{where} command {c}: ACT row={int(row[c])}: the banks have rows 0 .. "
                                   f"{device.pim.rows - 1}")
            for c, d in s.data.items():
                if not 0 <= c < len(w) or not pim[c] or int(op[c]) not in (PimOp.WR, PimOp.WRGB):
                    raise ProgramError(f"{where}: data given for command {c}, which is not a WR or WRGB")
                n = max(1, int(s.field(Family.PIM, "count")[c]))
                if len(d) != n:
                    raise ProgramError(f"{where} command {c}: {PimOp(int(op[c])).name} of {n} column(s) needs {n} "
                                       f"data words, got {len(d)}")
                top = 1 << device.pim.column_bits
                if any(not 0 <= x < top for x in d):
                    raise ProgramError(f"{where} command {c}: data words must be {device.pim.column_bits}-bit "
                                       f"column words")
        elif s.data:
            raise ProgramError(f"{where}: only PIM streams carry data words")
        if own == Family.VECTOR:
            self._check_vector(where, s, device)
        elif own == Family.LINK:
            self._check_link(where, s, device)
        elif own == Family.ATTN:
            self._check_array(where, s, device)

    @staticmethod
    def _unique_rows(s: Stream, fam: Family, names: tuple[str, ...]) -> Iterable[tuple[int, tuple[int, ...]]]:
        """(first command index, field values) of every distinct command of ``fam`` (ops first)."""
        sel = np.nonzero(s.families == int(fam))[0]
        if not len(sel):
            return []
        words, first = np.unique(s.words[sel], return_index=True)   # distinct words first (few), then their fields
        offs = [TABLES[fam].offsets()[n] for n in ("op",) + names]
        out: dict[tuple[int, ...], int] = {}
        for w, f in zip(words.tolist(), first.tolist()):
            row = tuple((w >> off) & ((1 << width) - 1) for off, width in offs)   # as Stream.field reads them
            out[row] = min(out.get(row, f), f)
        return [(int(sel[f]), row) for row, f in sorted(out.items())]

    def _check_vector(self, where: str, s: Stream, device: DeviceConfig) -> None:
        v = device.vector
        for c, (op, length, count, src, src2, dst) in self._unique_rows(
                s, Family.VECTOR, ("length", "count", "src", "src2", "dst")):
            if op == VectorOp.NOP:
                continue
            name = VectorOp(op).name
            if length < 1:
                raise ProgramError(f"{where} command {c}: {name} length=0: an op works on at least one element")
            if op == VectorOp.TOPK and not 1 <= 2 * src2 <= length:
                raise ProgramError(f"{where} command {c}: TOPK src2={src2} (k) must be between 1 and length / 2 "
                                   f"({length // 2}): a row's k values and k indices are written over its length")
            for operand, start, lines in vec_iface.regions(op, length, count, src, src2, dst, v):
                if start + lines > v.buffer_lines:
                    raise ProgramError(
                        f"{where} command {c}: {name} length={length} count={max(1, count)}: {operand} needs lines "
                        f"{start} .. {start + lines - 1} of the vector buffer, which has {v.buffer_lines} lines of "
                        f"{v.lanes} elements ({v.buffer_bytes} bytes); split the op or move the operand")

    def _check_link(self, where: str, s: Stream, device: DeviceConfig) -> None:
        nch = device.pim.channels
        valid = {int(e) for e in Endpoint if e != Endpoint.DEVICE}
        for c, (op, src, dst, nbytes) in self._unique_rows(s, Family.LINK, ("src", "dst", "bytes")):
            if op == LinkOp.NOP:
                continue
            if s.kind == "net":
                self._check_net(f"{where} command {c}", s, src, dst, nbytes)
                continue
            for k, e in (("src", src), ("dst", dst)):
                if e not in valid and not e < nch:
                    raise ProgramError(f"{where} command {c}: XFER {k}={e}: not an endpoint of {device.name} "
                                       f"(pim0 .. pim{nch - 1}, vector, array, host, all)")
                if e == Endpoint.ARRAY and device.attention is None:
                    raise ProgramError(f"{where} command {c}: XFER {k}=array: {device.name} has no attention array")
            if src == Endpoint.ALL:
                raise ProgramError(f"{where} command {c}: XFER src=all: 'all' (every channel) is a destination "
                                   f"only; read each channel with its own transfer")
            if src == dst:
                raise ProgramError(f"{where} command {c}: XFER src=dst={endpoint_name(src)}: a transfer moves data "
                                   f"between two endpoints")
            if nbytes < 1:
                raise ProgramError(f"{where} command {c}: XFER bytes=0: a transfer moves at least one byte")

    def _check_net(self, where: str, s: Stream, src: int, dst: int, nbytes: int) -> None:
        """A transfer of a device's interconnect port: from its vector unit to another device of the program."""
        if src != Endpoint.VECTOR:
            raise ProgramError(f"{where}: XFER src={endpoint_name(src)}: the interconnect port sends from its "
                               f"device's vector unit (src=vector)")
        k = dst - Endpoint.DEVICE
        if dst < Endpoint.DEVICE or not 0 <= k < self.devices or k == s.device_index:
            raise ProgramError(f"{where}: XFER dst={endpoint_name(dst)}: the interconnect port of device "
                               f"{s.device_index} sends to another device of the program (d0 .. d{self.devices - 1}"
                               f", not d{s.device_index})")
        if nbytes < 1:
            raise ProgramError(f"{where}: XFER bytes=0: a transfer moves at least one byte")

    def _check_array(self, where: str, s: Stream, device: DeviceConfig) -> None:
        a = device.attention
        for c, (op, m, k, n, dataflow) in self._unique_rows(s, Family.ATTN, ("m", "k", "n", "dataflow")):
            if op == AttnOp.NOP:
                continue
            name = AttnOp(op).name
            if min(m, k, n) < 1:
                raise ProgramError(f"{where} command {c}: {name} m={m} k={k} n={n}: every dimension must be at "
                                   f"least 1")
            if op == AttnOp.ATTEND and k > a.head_dim:
                raise ProgramError(f"{where} command {c}: ATTEND k={k}: the array's buffers hold head dimensions up "
                                   f"to {a.head_dim}")
            if op == AttnOp.GEMM and dataflow > 2:
                raise ProgramError(f"{where} command {c}: GEMM dataflow={dataflow}: must be 0 (os), 1 (ws) or 2 "
                                   f"(is)")

    # ---- text form -------------------------------------------------------------------------------------------------
    def to_text(self) -> str:
        """The text form (module docstring); :meth:`from_text` reads it back exactly."""
        out = [f"# {FORMAT} {VERSION}"]
        if self.device is not None:
            out.append(f"device {json.dumps(self.device) if isinstance(self.device, dict) else self.device}")
        if self.devices != 1:
            out.append(f"devices {self.devices}")
        if self.meta:
            out.append(f"meta {json.dumps(self.meta, sort_keys=True)}")
        for k in sorted(self.operators):
            out.append(f"operator {k} {json.dumps(self.operators[k], sort_keys=True)}")
        for k in sorted(self.placement):
            out.append(f"placement {k} {json.dumps(self.placement[k])}")
        names = self.names
        for s in self.streams:
            out.append(f"stream {s.name}")
            out.extend(_format(w, max(s.channel, 0), names, s.data.get(c)) for c, w in enumerate(s.words.tolist()))
        return "\n".join(out) + "\n"

    @classmethod
    def from_text(cls, text: str, source: str = "program") -> "Program":
        """Parse the text form strictly: errors name ``source:line`` and the rule."""
        lines = [(n, raw.split("#", 1)[0].strip()) for n, raw in enumerate(text.splitlines(), 1)]
        lines = [(n, ln) for n, ln in lines if ln]
        order: list[str] = []
        for n, ln in lines:
            toks = ln.split()
            if toks[0] == "stream":
                if len(toks) != 2:
                    raise ProgramError(f"{source}:{n}: 'stream' takes one name (stream pim0)")
                try:
                    parse_stream_name(toks[1])
                except ProgramError as e:
                    raise ProgramError(f"{source}:{n}: {e}") from None
                if toks[1] in order:
                    raise ProgramError(f"{source}:{n}: stream {toks[1]} is given twice; give each unit one stream")
                order.append(toks[1])
        index = {name: i for i, name in enumerate(order)}
        prog = {"device": None, "devices": 1, "meta": {}, "operators": {}, "placement": {}}
        words: list[list[int]] = [[] for _ in order]
        data: list[dict[int, list[int]]] = [{} for _ in order]
        where_of: list[list[int]] = [[] for _ in order]
        cur = -1
        for n, ln in lines:
            where = f"{source}:{n}"
            toks = ln.split()
            if toks[0] == "stream":
                cur = index[toks[1]]
                continue
            if toks[0] in _HEADERS:
                if cur >= 0:
                    raise ProgramError(f"{where}: {show(toks[0])} belongs before the first 'stream' line")
                cls._header(prog, toks[0], ln[len(toks[0]):].strip(), where)
                continue
            if cur < 0:
                raise ProgramError(f"{where}: a command before the first 'stream NAME' line; header lines are "
                                   f"{', '.join(_HEADERS)}")
            _, kind, ch = parse_stream_name(order[cur])
            word, d = parse_command(toks, kind, where, index, max(ch, 0))
            if d is not None:
                data[cur][len(words[cur])] = d
            words[cur].append(word)
            where_of[cur].append(n)
        streams = [Stream(name, np.array(words[i], dtype=np.uint64), data[i], where_of[i])
                   for i, name in enumerate(order)]
        return cls(streams, **prog, source=source)

    @staticmethod
    def _header(prog: dict[str, Any], key: str, rest: str, where: str) -> None:
        def js(text: str, what: str) -> Any:
            try:
                return json.loads(text)
            except json.JSONDecodeError as e:
                raise ProgramError(f"{where}: {what} must be JSON ({e.msg} at character {e.pos + 1})") from None
            except RecursionError:
                raise ProgramError(f"{where}: {what} is nested too deep to read; flatten it") from None

        if key == "device":
            if not rest:
                raise ProgramError(f"{where}: 'device' takes a preset name or a JSON device description")
            dev = js(rest, "an inline device") if rest.startswith("{") else rest
            prog["device"] = dev
        elif key == "devices":
            if not rest.isdigit() or int(rest) < 1:
                raise ProgramError(f"{where}: devices {show(rest)}: must be a whole number of at least 1")
            prog["devices"] = int(rest)
        elif key == "meta":
            m = js(rest, "meta")
            if not isinstance(m, dict):
                raise ProgramError(f"{where}: meta must be a JSON object")
            prog["meta"] = m
        elif key == "operator":
            ident, _, body = rest.partition(" ")
            if not ident.isdigit():
                raise ProgramError(f"{where}: 'operator ID {{...}}': ID must be the marker id (a whole number)")
            o = js(body.strip(), "an operator")
            if not isinstance(o, dict):
                raise ProgramError(f"{where}: an operator must be a JSON object")
            if int(ident) in prog["operators"]:
                raise ProgramError(f"{where}: operator {ident} is given twice")
            prog["operators"][int(ident)] = o
        else:
            tensor, _, body = rest.partition(" ")
            boxes = js(body.strip(), "a placement")
            _check_boxes(boxes, f"{where}: placement {tensor}")
            prog["placement"][tensor] = boxes

    # ---- files -----------------------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write the program: ``.npz`` in the binary form, anything else as text. The file appears whole or not at
        all (:func:`accel.outputs.write_atomic`; a bad path is an :class:`~accel.outputs.OutputError`)."""
        path = Path(path)
        if path.suffix == ".npz":
            write_atomic(path, lambda f: np.savez_compressed(f, **self._arrays()), "program")
        else:
            write_text_atomic(path, self.to_text(), "program")

    def _arrays(self) -> dict[str, np.ndarray]:
        head = {"format": FORMAT, "version": VERSION, "streams": self.names, "device": self.device,
                "devices": self.devices, "meta": self.meta,
                "operators": {str(k): v for k, v in self.operators.items()}, "placement": self.placement}
        arrays: dict[str, np.ndarray] = {"program": np.array(json.dumps(head))}
        for i, s in enumerate(self.streams):
            arrays[f"words_{i}"] = s.words
            idx = sorted(s.data)
            flat = [w for c in idx for w in s.data[c]]
            width = max([1] + [(w.bit_length() + 7) // 8 for w in flat])
            arrays[f"data_{i}_index"] = np.array(idx, dtype=np.int64)
            arrays[f"data_{i}_count"] = np.array([len(s.data[c]) for c in idx], dtype=np.int64)
            arrays[f"data_{i}_bytes"] = np.frombuffer(b"".join(w.to_bytes(width, "little") for w in flat),
                                                      dtype=np.uint8).reshape(len(flat), width)
        return arrays

    @classmethod
    def load(cls, path: str | Path) -> "Program":
        """Read a program file (``.npz`` binary form, else text); raises :class:`ProgramError`."""
        path = Path(path)
        if path.suffix != ".npz":
            return cls.from_text(read_text(path, "program", ProgramError), str(path))
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except OSError as e:
            raise ProgramError(f"{path}: cannot read the program ({e.strerror or e})") from None
        except (ValueError, EOFError) as e:
            raise ProgramError(f"{path}: not a program file in .npz form ({e})") from None
        prog = cls._from_arrays(arrays, str(path))
        prog.source = str(path)
        return prog

    @classmethod
    def _from_arrays(cls, arrays: dict[str, np.ndarray], where: str) -> "Program":
        if "program" not in arrays:
            raise ProgramError(f"{where}: no 'program' entry: not an accel program")
        try:
            head = json.loads(str(arrays["program"]))
        except json.JSONDecodeError as e:
            raise ProgramError(f"{where}: the 'program' entry is not JSON ({e.msg})") from None
        keys = {"format", "version", "streams", "device", "devices", "meta", "operators", "placement"}
        if not isinstance(head, dict) or set(head) != keys or head["format"] != FORMAT:
            raise ProgramError(f"{where}: the 'program' entry must hold exactly {', '.join(sorted(keys))} with "
                               f"format {FORMAT!r}")
        if head["version"] != VERSION:
            raise ProgramError(f"{where}: program version {show(head['version'])}; this accel reads version {VERSION}")
        streams = []
        expect = {"program"}
        for i, name in enumerate(head["streams"]):
            names = [f"words_{i}", f"data_{i}_index", f"data_{i}_count", f"data_{i}_bytes"]
            expect.update(names)
            missing = [n for n in names if n not in arrays]
            if missing:
                raise ProgramError(f"{where}: stream {name}: entry {missing[0]!r} is missing")
            w, idx, cnt, raw = (arrays[n] for n in names)
            if w.dtype != np.uint64 or w.ndim != 1 or idx.dtype != np.int64 or cnt.dtype != np.int64 \
                    or raw.dtype != np.uint8 or raw.ndim != 2 or len(idx) != len(cnt) or cnt.sum() != len(raw):
                raise ProgramError(f"{where}: stream {name}: entries must be words uint64[n], data index/count "
                                   f"int64[m] and data bytes uint8[words, width] that agree")
            data: dict[int, list[int]] = {}
            at = 0
            for c, n in zip(idx.tolist(), cnt.tolist()):
                data[c] = [int.from_bytes(raw[j].tobytes(), "little") for j in range(at, at + n)]
                at += n
            streams.append(Stream(name, w, data))
        extra = sorted(set(arrays) - expect)
        if extra:
            raise ProgramError(f"{where}: unknown entry {extra[0]!r}")
        try:
            operators = {int(k): v for k, v in head["operators"].items()}
        except (ValueError, AttributeError):
            raise ProgramError(f"{where}: operators must map marker ids to objects") from None
        for k, boxes in head["placement"].items():
            _check_boxes(boxes, f"{where}: placement {k}")
        return cls(streams, head["device"], head["devices"], head["placement"], operators, head["meta"])


def _check_boxes(boxes: Any, where: str) -> None:
    if not isinstance(boxes, list) or not all(isinstance(b, list) and len(b) == 6 and all(
            isinstance(x, int) and x >= 0 for x in b) for b in boxes):
        raise ProgramError(f"{where}: must be a list of [channel, bank, row_lo, row_hi, col_lo, col_hi] boxes of "
                           f"whole numbers")


# --------------------------------------------------------------------------------------------------------------------
# Building programs


class StreamBuilder:
    """Appends commands to one stream (:class:`ProgramBuilder`)."""

    def __init__(self, owner: "ProgramBuilder", name: str) -> None:
        self.owner, self.name = owner, name
        _, self.kind, self.channel = parse_stream_name(name)
        self.words: list[int] = []
        self.data: dict[int, list[int]] = {}

    def cmd(self, op: int | str, data: list[int] | None = None, **fields: int) -> "StreamBuilder":
        """A command of the stream's own family (``channel`` defaults to the stream's for PIM commands)."""
        fam = UNIT_FAMILY[self.kind]
        if fam == Family.PIM:
            fields.setdefault("channel", self.channel)
        if data is not None:
            self.data[len(self.words)] = list(data)
        self.words.append(encode(fam, op, **fields))
        return self

    def extend(self, words: Iterable[int], data: dict[int, list[int]] | None = None) -> "StreamBuilder":
        """Append encoded command words (``data``: their data words by position in ``words``)."""
        base = len(self.words)
        self.words.extend(int(w) for w in words)
        for i, d in (data or {}).items():
            self.data[base + i] = list(d)
        return self

    def signal(self, token: int) -> "StreamBuilder":
        self.words.append(encode(Family.SYNC, SyncOp.SIGNAL, token=token))
        return self

    def wait(self, stream: str, token: int) -> "StreamBuilder":
        """Wait for the next SIGNAL ``token`` of ``stream`` (a name; streams may be declared later)."""
        self.owner._pending.append((self, len(self.words), stream))
        self.words.append(encode(Family.SYNC, SyncOp.WAIT, token=token))
        return self

    def mark(self, ident: int) -> "StreamBuilder":
        self.words.append(encode(Family.SYNC, SyncOp.MARK, id=ident))
        return self

    def xfer(self, src: str | int, dst: str | int, nbytes: int, addr: int = 0) -> "StreamBuilder":
        """A link transfer between endpoints given by name (``pim3``, ``vector``, ``all``, ...) or code."""
        s = endpoint_code(src) if isinstance(src, str) else src
        d = endpoint_code(dst) if isinstance(dst, str) else dst
        return self.cmd(LinkOp.XFER, src=s, dst=d, bytes=nbytes, addr=addr)


class ProgramBuilder:
    """Builds a :class:`Program` stream by stream: ``b.stream("pim0").cmd("ACT", all_banks=1, row=3)``,
    ``b.stream("vector").wait("pim0", 1).cmd("ADD", length=64, src=0, src2=4, dst=8)``; streams appear in the
    order they are first named."""

    def __init__(self, device: str | dict[str, Any] | None = None, devices: int = 1) -> None:
        self.device, self.devices = device, devices
        self._streams: dict[str, StreamBuilder] = {}
        self._pending: list[tuple[StreamBuilder, int, str]] = []
        self.placement: dict[str, list[list[int]]] = {}
        self.operators: dict[int, dict[str, Any]] = {}
        self.meta: dict[str, Any] = {}

    def stream(self, name: str) -> StreamBuilder:
        if name not in self._streams:
            self._streams[name] = StreamBuilder(self, name)
        return self._streams[name]

    def build(self) -> Program:
        index = {n: i for i, n in enumerate(self._streams)}
        off, width = TABLES[Family.SYNC].offsets()["stream"]
        for sb, pos, target in self._pending:
            if target not in index:
                raise ProgramError(f"stream {sb.name} command {pos}: WAIT on stream {target!r}, which has no "
                                   f"commands; streams are {', '.join(index)}")
            if index[target] >= 1 << width:
                raise ProgramError(f"stream {sb.name}: WAIT on stream {target!r} (index {index[target]}): the "
                                   f"stream field addresses {1 << width} streams")
            sb.words[pos] |= index[target] << off
        self._pending.clear()
        streams = [Stream(n, np.array(sb.words, dtype=np.uint64), dict(sb.data)) for n, sb in self._streams.items()]
        return Program(streams, self.device, self.devices, dict(self.placement), dict(self.operators),
                       dict(self.meta))
