"""Workloads: a transformer as a list of operators with shapes, number formats, FLOPs and bytes.

The operator model (:mod:`.ops`) is plain frozen data shared by partitioning, cost model, code generation and report.
Sources, all without network access: a known model name or a Hugging Face model directory (:mod:`.hf`, shapes from
``transformers`` configs built locally; weights, when present, checked), a traced ``torch.nn.Module`` (:mod:`.trace`)
and a YAML operator list (:mod:`.listing`). See docs/mapping.md, "Workloads".
"""
from __future__ import annotations

from .formats import MIXED_SETS, precision_for, weight_format
from .hf import KNOWN_MODELS, Checkpoint, architecture, architecture_from_config, load_directory, resolve_model
from .listing import load_operator_list, workload_from_dict
from .ops import (LAYER, OPERATOR_CLASSES, PHASES, VECTOR_KINDS, AttentionMatmul, Gemm, KvWrite, Lookup, Operator,
                  Placed, Precision, Tensor, Vector, WeightFormat, Workload, WorkloadError)
from .sources import load_workload
from .trace import trace_module
from .transformer import EXPERT_POLICIES, Architecture, build_workload, expert_tokens, model_tensors

__all__ = [
    "MIXED_SETS", "precision_for", "weight_format", "KNOWN_MODELS", "Checkpoint", "architecture",
    "architecture_from_config", "load_directory", "resolve_model", "load_operator_list", "workload_from_dict",
    "LAYER", "OPERATOR_CLASSES", "PHASES", "VECTOR_KINDS", "AttentionMatmul", "Gemm", "KvWrite", "Lookup", "Operator",
    "Placed", "Precision", "Tensor", "Vector", "WeightFormat", "Workload", "WorkloadError", "EXPERT_POLICIES",
    "Architecture", "build_workload", "expert_tokens", "model_tensors", "load_workload", "trace_module",
]
