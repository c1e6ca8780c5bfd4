"""Workloads from a ``torch.nn.Module`` by tracing one call with :func:`torch.export.export`.

Why ``torch.export`` and not ``torch.fx.symbolic_trace``: symbolic tracing runs the Python code with proxies and
fails on Hugging Face models (``transformers`` 5.24's decorated forwards make it stop with "co_varnames is too
small", and data-dependent control flow would stop it anyway). ``torch.export`` traces with fake tensors, so it
follows the code the real call runs and records every ATen operator with its shapes and the module it ran in
(``nn_module_stack``); it works on hand-written modules and on HF models alike (``attn_implementation="eager"``
so that attention is plain matmuls and a softmax).

What becomes an operator (only work on *activations*, i.e. values computed from a float input or an embedding
lookup; masks and rotary tables built from positions are not):

* ``linear``/``addmm``/``mm``/``matmul`` with a parameter operand -> :class:`Gemm` (layout from the parameter);
* ``matmul``/``bmm`` of two activations -> :class:`AttentionMatmul`: the context product if its left operand
  comes from a softmax, else the score product; key/value heads from grouped-query attention's ``expand``;
  the scaling and mask add between score and softmax are folded into the softmax (``causal`` when a mask is added);
* ``embedding`` -> :class:`Lookup`; ``layer_norm``, ``softmax``, ``gelu``, ``silu``, ``relu`` -> :class:`Vector`;
* a leaf module whose class names a norm or an activation (``LlamaRMSNorm``, ``NewGELUActivation``, ...) -> one
  :class:`Vector` for all the elementwise operators inside it;
* other elementwise arithmetic on activations (residual adds, the gated MLP's multiply, rotary embedding's
  multiplies, negation and add) -> ``add``/``mul`` vectors, as the module computes them;
* views, copies, dropout (in eval mode), concatenation and indexing move no arithmetic and are skipped; any other
  operator on activations is an error naming it.

Layers are the entries of the first numbered module container (``transformer.h.3`` -> layer 3); layers whose
operators are equal (names relative to the layer, tensor names with ``{layer}``) share one block. A module without
such a container is one layer. Traces carry no KV-cache writes (the traced call keeps no cache).
"""
from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Union

from .ops import (LAYER, AttentionMatmul, Gemm, Lookup, Operator, Precision, Tensor, Vector, Workload,
                  WorkloadError)

__all__ = ["trace_module"]

#: Operators that move or reshape data without arithmetic.
_MOVES = {"view", "reshape", "_unsafe_view", "transpose", "t", "permute", "expand", "unsqueeze", "squeeze", "slice",
          "select", "contiguous", "clone", "to", "_to_copy", "dropout", "alias", "detach", "getitem", "split",
          "split_with_sizes", "chunk", "cat", "stack", "index", "flatten", "unflatten", "expand_as", "view_as",
          "repeat_interleave", "type_as", "_assert_tensor_metadata", "lift_fresh_copy"}
_TRANSPOSES = {"t", "transpose", "permute"}
_MATMULS = {"linear", "addmm", "mm", "matmul", "bmm"}
_VECTOR_OPS = {"layer_norm": "layer_norm", "native_layer_norm": "layer_norm", "softmax": "softmax",
               "_softmax": "softmax", "gelu": "gelu", "silu": "silu", "relu": "relu"}
_ELEMENTWISE = {"add": "add", "sub": "add", "mul": "mul", "div": "mul", "neg": "mul"}
#: Leaf-module class names -> the vector kind of everything inside them.
_LEAF_KINDS = ((re.compile(r"RMSNorm"), "rms_norm"), (re.compile(r"LayerNorm"), "layer_norm"),
               (re.compile(r"GELU|Gelu"), "gelu"), (re.compile(r"SiLU|Swish"), "silu"), (re.compile(r"ReLU"), "relu"),
               (re.compile(r"Softmax"), "softmax"))
_LAYER_PATH = re.compile(r"^(?P<container>.+?)\.(?P<index>\d+)(?:\.|$)")


def _aten(node: Any) -> str:
    packet = getattr(node.target, "_overloadpacket", None)
    return packet.__name__ if packet is not None else getattr(node.target, "__name__", str(node.target))


def _shape(node: Any) -> tuple[int, ...]:
    return tuple(int(s) for s in node.meta["val"].shape)


def _is_float(node: Any) -> bool:
    v = node.meta.get("val") if hasattr(node, "meta") else None
    return v is not None and hasattr(v, "dtype") and v.dtype.is_floating_point


def _module(node: Any) -> tuple[str, str]:
    stack = node.meta.get("nn_module_stack") or {}
    return tuple(list(stack.values())[-1]) if stack else ("", "")  # type: ignore[return-value]


class _Tracer:
    def __init__(self, module: Any, ep: Any, precision: Precision):
        self.module, self.p = module, precision
        sig = ep.graph_signature
        canonical: dict[int, str] = {}
        for name, param in module.named_parameters(remove_duplicate=False):
            canonical.setdefault(id(param), name)
        by_name = dict(module.named_parameters(remove_duplicate=False))
        self.params = {ph: canonical[id(by_name[fqn])] for ph, fqn in sig.inputs_to_parameters.items()}
        self.nodes = list(ep.graph.nodes)
        self.act: set[str] = set()
        for n in self.nodes:
            if n.op == "placeholder" and n.name in sig.user_inputs and _is_float(n):
                self.act.add(n.name)
            elif n.op == "call_function" and (_aten(n) == "embedding"
                                              or any(a.name in self.act for a in n.all_input_nodes)):
                self.act.add(n.name)
        paths = {p for n in self.nodes for p, _ in (n.meta.get("nn_module_stack") or {}).values()}
        self.leaves = {p for p in paths if not any(q != p and (not p or q.startswith(p + ".")) for q in paths)}

    # helpers ---------------------------------------------------------------------------------------------------
    def is_act(self, node: Any) -> bool:
        return getattr(node, "name", None) in self.act and _is_float(node)

    def param_of(self, node: Any) -> Union[tuple[str, int], None]:
        """(parameter name, transpositions on the way) if ``node`` is a parameter seen through moves."""
        flips = 0
        while node.op == "call_function" and _aten(node) in _MOVES and node.all_input_nodes:
            flips += _aten(node) in _TRANSPOSES
            node = node.all_input_nodes[0]
        if node.op == "placeholder" and node.name in self.params:
            return self.params[node.name], flips
        return None

    def source(self, node: Any) -> Any:
        """The first non-move producer of ``node``."""
        while node.op == "call_function" and _aten(node) in _MOVES and node.all_input_nodes:
            node = node.all_input_nodes[0]
        return node

    def kv_heads(self, node: Any, heads: int) -> int:
        """Key/value heads behind a grouped-query ``expand`` (b, kv, 1 -> rep, L, d) on the way to ``node``."""
        while node.op == "call_function" and _aten(node) in _MOVES and node.all_input_nodes:
            src = node.all_input_nodes[0]
            if _aten(node) == "expand" and len(_shape(src)) == 5 and _shape(src)[2] == 1:
                return _shape(src)[1]
            node = src
        return heads

    # ----------------------------------------------------------------------------------------------------------
    def fold_softmax_inputs(self) -> None:
        """Find the scaling and mask ops between each score matmul and its softmax (folded into the softmax)."""
        self.absorbed: set[str] = set()
        self.masked: dict[str, bool] = {}  # score matmul and softmax node -> a mask is added between them
        for n in self.nodes:
            if not (n.op == "call_function" and _aten(n) in ("softmax", "_softmax") and self.is_act(n)):
                continue
            masked, cur, chain = False, self.source(n.all_input_nodes[0]), []
            while (cur.op == "call_function" and _aten(cur) in _ELEMENTWISE
                   and sum(self.is_act(a) for a in cur.all_input_nodes) == 1):
                masked |= any(_is_float(a) and not self.is_act(a) for a in cur.all_input_nodes)
                chain.append(cur.name)
                cur = self.source(next(a for a in cur.all_input_nodes if self.is_act(a)))
            if cur.op == "call_function" and _aten(cur) in ("matmul", "bmm"):
                self.absorbed.update(chain)
                self.masked[n.name] = self.masked[cur.name] = masked

    def run(self) -> list[tuple[str, Operator]]:
        """(module path, operator) in graph order."""
        self.fold_softmax_inputs()
        out: list[tuple[str, Operator]] = []
        counts: dict[str, int] = {}
        group: list[Any] = []  # one call of a norm/activation leaf module: [path, kind, last node]

        def name(path: str, base: str) -> str:
            """A unique name; a leaf module's own operator is named by the module."""
            key = path if path in self.leaves else f"{path}.{base}" if path else base
            i = counts.get(key, 0)
            counts[key] = i + 1
            return key if i == 0 else f"{key}_{i}"

        def flush() -> None:
            if group:
                path, kind, last = group
                out.append((path, self.vector(name(path, kind), kind, last, leaf=path)))
                group.clear()

        for n in self.nodes:
            if n.op != "call_function" or not self.is_act(n) or n.name in self.absorbed:
                continue
            path, cls = _module(n)
            op = _aten(n)
            leaf_kind = next((k for rx, k in _LEAF_KINDS if rx.search(cls.rsplit(".", 1)[-1])), None)
            if path in self.leaves and leaf_kind is not None:
                if group and group[0] == path:  # the next operator of the same call
                    group[2] = n
                else:
                    flush()
                    group.extend([path, leaf_kind, n])
                continue
            if op in _MOVES:
                continue
            flush()
            if op in _MATMULS:
                out.append((path, self.matmul(n, path, name)))
            elif op == "embedding":
                table, rows = n.args[0], n.args[1]
                found = self.param_of(table)
                if found is None:
                    raise WorkloadError(f"trace: embedding {n.name} in {path or 'the top module'} reads no parameter")
                table_rows, width = _shape(table)
                out.append((path, Lookup(name(path, "lookup"), math.prod(_shape(rows)), width, found[0], table_rows,
                                         self.p.weights, self.p.act_bits)))
            elif op in _VECTOR_OPS:
                out.append((path, self.vector(name(path, _VECTOR_OPS[op]), _VECTOR_OPS[op], n)))
            elif op in _ELEMENTWISE:
                k = sum(self.is_act(a) for a in n.all_input_nodes)
                out.append((path, self.vector(name(path, _ELEMENTWISE[op]), _ELEMENTWISE[op], n, inputs=k)))
            else:
                raise WorkloadError(f"trace: operator aten.{op} ({n.name}) in {path or 'the top module'} "
                                    f"({cls.rsplit('.', 1)[-1] or 'top'}) has no operator kind; the tracer knows "
                                    f"matmuls, embedding, {', '.join(sorted(_VECTOR_OPS))}, "
                                    f"{', '.join(sorted(_ELEMENTWISE))} and norm/activation modules")
        flush()
        return out

    def vector(self, name: str, kind: str, n: Any, inputs: int = 1, leaf: Union[str, None] = None) -> Vector:
        """A vector operator producing ``n``; its parameters are the leaf module's own, or ``n``'s parameter
        operands."""
        if leaf is not None:
            params = [f"{leaf}.{k}" for k, _ in self.module.get_submodule(leaf).named_parameters(recurse=False)]
        else:
            found = (self.param_of(a) for a in n.all_input_nodes if not self.is_act(a))
            params = [f[0] for f in found if f is not None]
        shape = _shape(n)
        width = shape[-1] if shape else 1
        elems = sum(self.module.get_parameter(p).numel() for p in params)
        return Vector(name, kind, max(1, math.prod(shape) // width), width, max(1, inputs), width, tuple(params),
                      elems, self.p.act_bits, self.p.param_bits)

    def matmul(self, n: Any, path: str, name: Any) -> Operator:
        op = _aten(n)
        args = list(n.args)
        if op == "linear":
            x, w, b = args[0], args[1], args[2] if len(args) > 2 else None
        elif op == "addmm":
            b, x, w = args[0], args[1], args[2]
        else:
            x, w, b = args[0], args[1], None
        pw = self.param_of(w) if hasattr(w, "op") else None
        if pw is None and hasattr(x, "op") and self.param_of(x) is not None:
            raise WorkloadError(f"trace: {op} {n.name} in {path}: a weight on the left (W @ x) is not supported")
        if pw is None:
            return self.attention(n, path, name)
        weight, flips = pw
        pb = self.param_of(b) if hasattr(b, "op") else None
        k = _shape(x)[-1]
        n_out = _shape(n)[-1]
        m = math.prod(_shape(n)) // n_out
        layout = "nk" if op == "linear" or flips % 2 else "kn"
        return Gemm(name(path, op), m, k, n_out, weight, layout, pb[0] if pb else None, None,
                    self.p.weights, self.p.act_bits, self.p.param_bits)

    def attention(self, n: Any, path: str, name: Any) -> AttentionMatmul:
        a, b = n.args[0], n.args[1]
        sa, sb = _shape(a), _shape(b)
        if len(sa) not in (3, 4) or len(sb) != len(sa):
            raise WorkloadError(f"trace: matmul {n.name} in {path} of two activations with shapes {sa} and {sb} is "
                                f"no attention product (3-D or 4-D batched matmuls are)")
        batch, heads = (sa[0], sa[1]) if len(sa) == 4 else (sa[0], 1)
        src = self.source(a)
        context = src.op == "call_function" and _aten(src) in ("softmax", "_softmax")
        if context:
            queries, kv_len, head_dim = sa[-2], sa[-1], sb[-1]
        else:
            queries, head_dim, kv_len = sa[-2], sa[-1], sb[-1]
        masked = self.masked.get(src.name if context else n.name, False)
        kv = self.kv_heads(b, heads) if len(sa) == 4 else heads
        kind = "attn_context" if context else "attn_score"
        return AttentionMatmul(name(path, "context" if context else "score"), kind, batch, heads, kv, head_dim,
                               queries, kv_len, masked and queries > 1, self.p.act_bits, self.p.kv_bits)


def _split_layers(placed: list[tuple[str, Operator]]) -> tuple[list[Operator], list[list[Operator]], list[Operator]]:
    """Prologue, per-layer operators (names relative, tensors templated) and epilogue."""
    container = None
    for path, _ in placed:
        m = _LAYER_PATH.match(path)
        if m:
            container = m.group("container")
            break
    if container is None:
        return [], [[op for _, op in placed]], []
    prologue: list[Operator] = []
    layers: dict[int, list[Operator]] = {}
    epilogue: list[Operator] = []
    for path, op in placed:
        m = _LAYER_PATH.match(path)
        if m and m.group("container") == container:
            i = int(m.group("index"))
            prefix = f"{container}.{i}."
            layers.setdefault(i, []).append(_relative(op, prefix, f"{container}.{LAYER}."))
        elif not layers:
            prologue.append(op)
        else:
            epilogue.append(op)
    return prologue, [layers[i] for i in sorted(layers)], epilogue


def _relative(op: Operator, prefix: str, template: str) -> Operator:
    def rel(s: str) -> str:
        return s[len(prefix):] if s.startswith(prefix) else s

    def tmpl(s: Union[str, None]) -> Union[str, None]:
        return template + s[len(prefix):] if s is not None and s.startswith(prefix) else s

    changes: dict[str, Any] = {"name": rel(op.name) or op.name}
    if isinstance(op, Gemm):
        changes.update(weight=tmpl(op.weight), bias=tmpl(op.bias))
    elif isinstance(op, Vector):
        changes.update(params=tuple(tmpl(p) for p in op.params))
    elif isinstance(op, Lookup):
        changes.update(table=tmpl(op.table))
    return dataclasses.replace(op, **changes)


def trace_module(module: Any, args: tuple[Any, ...], kwargs: Union[dict[str, Any], None] = None, *,
                 precision: Precision, name: Union[str, None] = None, phase: str = "prefill") -> Workload:
    """Trace one call ``module(*args, **kwargs)`` into a :class:`Workload` (module docstring).

    Parameters
    ----------
    module:
        A ``torch.nn.Module`` (put in eval mode for the trace).
    args, kwargs:
        Example inputs; their shapes fix the workload's (batch and tokens from the first input, or from the
        attention products when there are any).
    precision:
        Number formats of the operators (:func:`mapping.workload.precision_for`).
    name:
        Model name (default: the module's class name).
    phase:
        ``"prefill"`` or ``"decode"`` (one new token).
    """
    import torch

    if not isinstance(module, torch.nn.Module):
        raise WorkloadError(f"trace: {type(module).__name__} is not a torch.nn.Module")
    module.eval()
    try:
        with torch.no_grad():
            ep = torch.export.export(module, tuple(args), kwargs=kwargs or {}, strict=False)
    except Exception as e:  # torch.export raises many kinds (UserError, GuardOnDataDependentSymNode, ...)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise WorkloadError(f"trace: torch.export cannot trace {type(module).__name__} ({first})") from None
    tracer = _Tracer(module, ep, precision)
    placed = tracer.run()
    prologue, per_layer, epilogue = _split_layers(placed)
    blocks: dict[tuple[Operator, ...], int] = {}
    layers = [blocks.setdefault(tuple(ops), len(blocks)) for ops in per_layer]
    attn = [op for _, op in placed if isinstance(op, AttentionMatmul)]
    if attn:
        batch, tokens, context = attn[0].batch, attn[0].queries, attn[0].kv_len
    else:
        users = ep.graph_signature.user_inputs
        first = _shape(next(n for n in tracer.nodes if n.op == "placeholder" and n.name in users
                            and hasattr(n.meta.get("val"), "shape")))
        batch, tokens = (first[0], first[1]) if len(first) >= 2 else (1, first[0] if first else 1)
        context = tokens
    tensors = tuple(Tensor(n, tuple(p.shape)) for n, p in module.named_parameters())  # a tied parameter once
    return Workload(name or type(module).__name__, phase, batch, tokens, context, precision, tuple(prologue),
                    tuple(blocks), tuple(layers), tuple(epilogue), tensors, f"trace:{type(module).__name__}")
