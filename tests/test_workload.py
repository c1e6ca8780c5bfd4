"""Workloads: operator lists from names, configs, model directories, traces and YAML, cross-checked against torch.

Parameter counts are checked against the Hugging Face model built on the meta device, matmul FLOPs against
``torch.utils.flop_counter.FlopCounterMode`` on tiny real models (eager attention, eager experts), for every family
(GPT-2, OPT with its 350m quirks, LLaMA with grouped-query attention, Mixtral's mixture of experts).
"""
from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from accel.cli import main
from accel.config import load_preset
from accel.mapping.workload import (KNOWN_MODELS, AttentionMatmul, Gemm, KvWrite, Lookup, Vector, WeightFormat,
                                    Workload, WorkloadError, architecture, architecture_from_config, build_workload,
                                    expert_tokens, load_directory, load_operator_list, load_workload, model_tensors,
                                    precision_for, trace_module, weight_format, workload_from_dict)
from accel.numerics import DATATYPES

from fuzz_targets import OPERATOR_LIST  # the operator list of every kind that the fuzz tests mutate

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402
from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig, MixtralConfig, OPTConfig  # noqa: E402

DEVICE = load_preset("aim-gddr6")
INT8 = precision_for(DEVICE, "int8")


def _tiny(family: str, rng: np.random.Generator, variant: int = 0) -> object:
    """A random small config of a family; ``variant`` cycles the quirks (OPT post-LN with projections, tied or
    untied LM heads, grouped-query attention with 1, 2 or all key/value heads)."""
    heads = int(rng.choice([2, 4]))
    hd = int(rng.choice([4, 8]))
    d = heads * hd
    layers = int(rng.integers(1, 4))
    vocab = int(rng.integers(20, 60))
    pos = int(rng.integers(12, 24))
    ids = dict(bos_token_id=0, eos_token_id=0, pad_token_id=0)
    if family == "gpt2":
        return GPT2Config(n_embd=d, n_layer=layers, n_head=heads, n_positions=pos, vocab_size=vocab,
                          n_inner=int(rng.choice([2 * d, 4 * d])), **ids)
    if family == "opt":
        post = variant % 2 == 0
        return OPTConfig(hidden_size=d, ffn_dim=int(rng.choice([2 * d, 3 * d])), num_hidden_layers=layers,
                         num_attention_heads=heads, max_position_embeddings=pos, vocab_size=vocab,
                         word_embed_proj_dim=d // 2 if post else d, do_layer_norm_before=not post, **ids)
    kv = (1, 2, heads)[variant % 3]
    common = dict(hidden_size=d, intermediate_size=int(rng.choice([2 * d, 3 * d])), num_hidden_layers=layers,
                  num_attention_heads=heads, num_key_value_heads=kv, max_position_embeddings=pos, vocab_size=vocab,
                  tie_word_embeddings=variant % 2 == 1, **ids)
    if family == "llama":
        return LlamaConfig(**common)
    return MixtralConfig(num_local_experts=int(rng.choice([3, 4])), num_experts_per_tok=2, **common)


def _real(cfg: object) -> object:
    return AutoModelForCausalLM.from_config(cfg, attn_implementation="eager",
                                            experts_implementation="eager").eval()


def _matmul_flops(w: Workload) -> int:
    return sum(p.op.flops for p in w.operators() if isinstance(p.op, (Gemm, AttentionMatmul)))


def _hf_params(cfg: object) -> int:
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------------------------------------------------
# Parameters and FLOPs against torch


@pytest.mark.parametrize("name", list(KNOWN_MODELS))
def test_known_model_parameters_equal_the_hf_model(name):
    from accel.mapping.workload.hf import known_config

    arch = architecture(name)
    assert sum(t.elements for t in model_tensors(arch)) == _hf_params(known_config(name))


def test_published_parameter_counts():
    # model cards / the Hub's safetensors metadata: GPT-2 124M ... Mixtral 46.7B
    counts = {n: architecture(n).summary()["parameters"] for n in KNOWN_MODELS}
    assert counts["gpt2"] == 124_439_808 and counts["gpt2-xl"] == 1_557_611_200
    assert counts["opt-350m"] == 331_196_416 and counts["llama2-7b"] == 6_738_415_616
    assert counts["llama2-70b"] == 68_976_648_192 and counts["llama3-8b"] == 8_030_261_248
    assert counts["mixtral-8x7b"] == 46_702_792_704


@pytest.mark.parametrize("family", ["gpt2", "opt", "llama", "mixtral"])
def test_random_configs_parameters_and_flops_equal_torch(family):
    rng = np.random.default_rng({"gpt2": 11, "opt": 12, "llama": 13, "mixtral": 14}[family])
    for variant in range(12):  # parameter counts: cheap on the meta device
        cfg = _tiny(family, rng, variant)
        assert sum(t.elements for t in model_tensors(architecture_from_config(cfg, "tiny"))) == _hf_params(cfg)
    for trial in range(3):
        cfg = _tiny(family, rng, trial)
        arch = architecture_from_config(cfg, f"tiny-{family}")
        model = _real(cfg)
        batch = int(rng.integers(1, 3))
        prompt = int(rng.integers(2, cfg.max_position_embeddings))
        ids = torch.from_numpy(rng.integers(0, cfg.vocab_size, (batch, prompt)))
        with torch.no_grad():
            counter = FlopCounterMode(display=False)
            with counter:
                out = model(ids, use_cache=True)
            # a plain forward computes logits for every token: logits="all"
            pre = build_workload(arch, "prefill", precision=INT8, batch=batch, prompt=prompt, logits="all")
            assert _matmul_flops(pre) == counter.get_total_flops(), (family, trial)
            counter = FlopCounterMode(display=False)
            with counter:
                model(ids[:, :1], cache=out["cache"], use_cache=True)
        dec = build_workload(arch, "decode", precision=INT8, batch=batch, context=prompt + 1)
        assert _matmul_flops(dec) == counter.get_total_flops(), (family, trial)


@pytest.mark.parametrize("name,context", [("gpt2-xl", 1024), ("opt-6.7b", 2048), ("llama2-70b", 4096),
                                          ("llama3-8b", 8192), ("mixtral-8x7b", 4096)])
def test_decode_flops_follow_the_reference_formula(name, context):
    # REFERENCE.md, "Workload counts": 2 x (matmul weights of all layers + hidden x vocab) + 4 x layers x context x
    # hidden (query heads), MoE counting only the top-k experts' weights per token.
    arch = architecture(name)
    w = build_workload(arch, "decode", precision=INT8, context=context)
    d, hd = arch.hidden, arch.heads * arch.head_dim
    attn = d * hd * 2 + d * arch.kv_heads * arch.head_dim * 2
    mlp = (3 if arch.family in ("llama", "mixtral") else 2) * d * arch.ffn
    if arch.experts:
        mlp = arch.top_k * mlp + d * arch.experts  # chosen experts + router
    proj = 2 * d * arch.embed_dim if arch.embed_dim != d else 0
    expected = 2 * (arch.layers * (attn + mlp) + proj + arch.embed_dim * arch.vocab) + 4 * arch.layers * context * hd
    assert _matmul_flops(w) == expected


# --------------------------------------------------------------------------------------------------------------------
# Structure of the named models


def test_gpt2_decode_operators_and_bytes():
    p = precision_for(DEVICE, "int4")
    w = build_workload(architecture("gpt2"), "decode", precision=p, context=1024)
    assert (w.tokens, w.context, len(w.blocks), w.layers) == (1, 1024, 1, (0,) * 12)
    body = {op.name: op for op in w.blocks[0]}
    qkv = body["attn.c_attn"]
    assert (qkv.m, qkv.k, qkv.n, qkv.layout) == (1, 768, 2304, "kn")
    assert qkv.weight == "transformer.h.{layer}.attn.c_attn.weight"
    assert qkv.weight_bytes == (768 * 2304 * 4 + 2304 * 6 * 8) / 8  # int4 codes + an 8-bit scale per 128 weights
    score = body["attn.score"]
    assert (score.heads, score.kv_heads, score.queries, score.kv_len) == (12, 12, 1, 1024)
    assert score.kv_read_bytes == 12 * 1024 * 64  # int8 keys
    assert body["attn.kv_write"].kv_write_bytes == 2 * 12 * 64
    assert w.epilogue[-1].weight == "transformer.wte.weight"  # tied LM head
    assert [op.name for op in w.prologue] == ["embed_tokens", "embed_positions", "embed_add"]


def test_opt350m_quirks():
    arch = architecture("opt-350m")
    w = build_workload(arch, "prefill", precision=INT8, prompt=16, batch=2)
    assert [op.name for op in w.prologue] == ["embed_tokens", "project_in", "embed_positions", "embed_add"]
    assert (w.prologue[1].k, w.prologue[1].n) == (512, 1024)
    assert w.prologue[2].table_rows == 2050  # learned positions, offset 2
    names = [op.name for op in w.blocks[0]]
    assert names.index("self_attn_layer_norm") > names.index("residual_attn")  # post-LN
    assert names[-1] == "final_layer_norm"
    assert [op.name for op in w.epilogue] == ["project_out", "lm_head"]  # no final norm when post-LN
    assert w.epilogue[0].m == 2  # logits="last": the last token of each sequence
    assert all(op.causal for op in w.blocks[0] if isinstance(op, AttentionMatmul))


def test_llama_gqa_rope_and_gated_mlp():
    w = build_workload(architecture("llama3-8b"), "decode", precision=INT8, context=8192, batch=3)
    body = {op.name: op for op in w.blocks[0]}
    assert body["self_attn.k_proj"].n == 8 * 128 and body["self_attn.q_proj"].n == 4096
    assert body["self_attn.rope"].width == (32 + 8) * 128
    score = body["self_attn.score"]
    assert score.kv_read_bytes == 3 * 8 * 8192 * 128  # read once per key/value head
    assert score.macs == 3 * 32 * 8192 * 128
    assert [body[n].kind for n in ("mlp.act", "mlp.mul")] == ["silu", "mul"]
    assert w.epilogue[-1].weight == "lm_head.weight"  # untied


def test_mixtral_reads_only_the_chosen_experts():
    arch = architecture("mixtral-8x7b")
    for batch, policy, distinct in [(1, "worst", 2), (4, "worst", 8), (4, "best", 2), (4, "expected", 5), (4, 3, 3)]:
        w = build_workload(arch, "decode", precision=INT8, context=128, batch=batch, experts=policy)
        experts = {op.expert for op in w.blocks[0] if isinstance(op, Gemm) and op.expert is not None}
        assert experts == set(range(distinct)), (batch, policy)
        routed = [op.m for op in w.blocks[0] if isinstance(op, Gemm) and op.name.endswith(".w1")]
        assert sum(routed) == batch * 2
    one = build_workload(arch, "decode", precision=INT8, context=128)
    read = one.read_tensors()
    assert "model.layers.5.block_sparse_moe.experts.1.w2.weight" in read
    assert "model.layers.5.block_sparse_moe.experts.2.w2.weight" not in read
    assert one.parameters == 46_702_792_704  # the inventory keeps every expert


def test_expert_tokens_randomised():
    rng = np.random.default_rng(7)
    for _ in range(300):
        experts = int(rng.integers(1, 17))
        top_k = int(rng.integers(1, experts + 1))
        tokens = int(rng.integers(1, 50))
        most = min(experts, tokens * top_k)
        for policy in ("worst", "best", "expected", int(rng.integers(top_k, most + 1))):
            routed = expert_tokens(experts, top_k, tokens, policy)
            counts = [m for _, m in routed]
            assert sum(counts) == tokens * top_k and max(counts) <= tokens and max(counts) - min(counts) <= 1
            assert top_k <= len(routed) <= most
            assert [e for e, _ in routed] == list(range(len(routed)))
        assert len(expert_tokens(experts, top_k, tokens, "worst")) == most
    with pytest.raises(WorkloadError, match=r"^experts 9: must be between top_k \(2\) and 8"):
        expert_tokens(8, 2, 4, 9)
    with pytest.raises(WorkloadError, match=r"^experts 'most': must be one of worst, expected, best"):
        expert_tokens(8, 2, 4, "most")


def test_identical_layers_share_one_block_and_totals_add_up():
    arch = architecture("gpt2")
    w = build_workload(arch, "decode", precision=INT8, context=64)
    assert len(w.blocks) == 1
    # a different format in one layer's tensor makes that layer (and only it) a block of its own
    int4 = weight_format("int4", DEVICE.bitserial)
    w2 = build_workload(arch, "decode", precision=INT8, context=64,
                        formats={"transformer.h.7.mlp.c_fc.weight": int4})
    assert len(w2.blocks) == 2 and w2.layers == (0,) * 7 + (1,) + (0,) * 4
    for work in (w, w2):
        flat = {}
        for p in work.operators():
            for k, v in p.op.totals().items():
                flat[k] = flat.get(k, 0) + v
        assert flat == pytest.approx(work.totals())
    diff = w.totals()["weight_bytes"] - w2.totals()["weight_bytes"]
    assert diff == 768 * 3072 * (8 - 4) / 8


# --------------------------------------------------------------------------------------------------------------------
# Weight formats


def test_weight_formats_come_from_numerics_and_config():
    bs = DEVICE.bitserial
    for name in bs.datatypes:
        f = weight_format(name, bs)
        assert f.bits_per_weight == DATATYPES[name].code_bits + bs.scale_bits / bs.group_size
    mixed = weight_format("mixed", bs)
    assert mixed.datatypes == ("fp4_er_pos", "fp4_er_neg", "fp4_ea_pos", "fp4_ea_neg")
    assert mixed.bits_per_weight == 4 + (bs.scale_bits + bs.dtype_bits) / bs.group_size
    assert weight_format("mixed3", bs).code_bits == 3
    mix = weight_format("mixed:int8=0.25,int4=0.75", bs)
    assert mix.code_bits == 5.0 and mix.matrix_bytes(200, 3) == (200 * 3 * 5 + 3 * 2 * 12) / 8
    assert weight_format("int4", bs, group_size=64).matrix_bytes(128, 1) == (128 * 4 + 2 * 8) / 8
    with pytest.raises(WorkloadError, match=r"datatypes of different widths \(int8, int4\) need the fraction"):
        weight_format("mixed:int8,int4", bs)
    with pytest.raises(WorkloadError, match=r"^datatype 'int5' \(did you mean 'int8'\?\)"):
        weight_format("int5", bs)
    tiny = load_preset("fpga-tiny").bitserial
    missing = next(d for d in DATATYPES if d not in tiny.datatypes)
    with pytest.raises(WorkloadError, match=rf"^datatype '{missing}': the device's bit-serial unit does not"):
        weight_format(missing, tiny)


# --------------------------------------------------------------------------------------------------------------------
# Model directories


def _save(tmp_path, cfg, **kw):
    model = AutoModelForCausalLM.from_config(cfg)
    model.save_pretrained(tmp_path, **kw)
    return model


def test_directory_shapes_and_dtypes(tmp_path):
    cfg = _tiny("mixtral", np.random.default_rng(3))
    _save(tmp_path, cfg)
    arch, ckpt = load_directory(tmp_path)
    assert arch == architecture_from_config(cfg, tmp_path.name)
    assert ckpt is not None and {dt for _, dt in ckpt.dtypes} == {"F32"}
    assert len(ckpt.dtypes) == len(model_tensors(arch))
    _, w = load_workload(str(tmp_path), "decode", DEVICE, context=4)
    assert w.source.startswith("directory:") and w.checkpoint_dtypes == ckpt.dtypes


def test_directory_sharded_and_without_base_prefix(tmp_path):
    from safetensors.torch import load_file, save_file

    cfg = _tiny("gpt2", np.random.default_rng(4))
    _save(tmp_path / "sharded", cfg, max_shard_size="20KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    arch, ckpt = load_directory(tmp_path / "sharded")
    assert ckpt is not None and len({f for f, _ in ckpt.location.values()}) > 1
    # the Hub's GPT-2 checkpoints name tensors without the "transformer." prefix and keep the attention buffers
    _save(tmp_path / "hub", cfg)
    path = tmp_path / "hub" / "model.safetensors"
    tensors = {k.removeprefix("transformer."): v for k, v in load_file(path).items()}
    tensors["h.0.attn.bias"] = torch.ones(1, 1, 4, 4)
    save_file(tensors, path)
    _, ckpt = load_directory(tmp_path / "hub")
    assert ckpt.location["transformer.h.0.ln_1.weight"] == ("model.safetensors", "h.0.ln_1.weight")
    assert ckpt.unused == ("h.0.attn.bias",)


def test_directory_weights_that_disagree(tmp_path):
    from safetensors.torch import load_file, save_file

    cfg = _tiny("llama", np.random.default_rng(5))
    _save(tmp_path, cfg)
    path = tmp_path / "model.safetensors"
    tensors = load_file(path)
    good = tuple(tensors["model.layers.0.mlp.up_proj.weight"].shape)
    tensors["model.layers.0.mlp.up_proj.weight"] = torch.zeros(good[0] + 1, good[1])
    save_file(tensors, path)
    bad = (good[0] + 1, good[1])
    with pytest.raises(WorkloadError, match=rf"model.safetensors: tensor model.layers.0.mlp.up_proj.weight has shape "
                                            rf"{re.escape(str(bad))}, but config.json gives {re.escape(str(good))}"):
        load_directory(tmp_path)
    del tensors["model.layers.0.mlp.up_proj.weight"]
    save_file(tensors, path)
    with pytest.raises(WorkloadError, match=r"tensor model.layers.0.mlp.up_proj.weight \(shape .*\) is missing"):
        load_directory(tmp_path)


def test_checkpoint_gives_the_exact_mix(tmp_path):
    from accel.numerics import quantize_weights

    cfg = _tiny("llama", np.random.default_rng(6))
    model = _save(tmp_path, cfg)
    _, w = load_workload(str(tmp_path), "decode", DEVICE, datatype="mixed", context=3)
    q = next(op for op in w.blocks[w.layers[0]] if op.name == "self_attn.q_proj")
    assert q.weights.fractions is not None and sum(q.weights.fractions) == pytest.approx(1)
    weight = model.model.layers[0].self_attn.q_proj.weight.detach().numpy()
    pad = -weight.shape[1] % DEVICE.bitserial.group_size
    qw = quantize_weights(np.pad(weight, ((0, 0), (0, pad))), q.weights.datatypes, DEVICE.bitserial.group_size,
                          DEVICE.bitserial.scale_bits)
    assert q.weights.fractions == tuple(float(np.mean(qw.dtypes == d)) for d in q.weights.datatypes)
    # different widths: shape-only refuses, a checkpoint counts them
    with pytest.raises(WorkloadError, match="need the fraction of groups"):
        load_workload("gpt2", "decode", DEVICE, datatype="mixed:int8,int4", context=3)
    _, w = load_workload(str(tmp_path), "decode", DEVICE, datatype="mixed:int4,int3", context=3)
    fmts = {op.weights for p in [w] for b in p.blocks for op in b if isinstance(op, Gemm)}
    assert all(3 <= f.code_bits <= 4 for f in fmts)


@pytest.mark.parametrize("write,message", [
    (None, r"no config.json; a Hugging Face model directory holds config.json"),
    (b"{not json", r"config.json:1:2: not valid JSON \(Expecting property name enclosed in double quotes\)"),
    (b'{"model_type": "gpt2", "n_embd": "\xff"}',
     r"config.json:1:35: byte 0xff is not UTF-8 text; save the JSON file as UTF-8"),
    (b'{"model_type": "bert"}', r"config.json: model_type 'bert' is not supported; supported are gpt2, opt, llama"),
    (b'{"n_layer": 2}', r"config.json: has no model_type; supported are gpt2"),
    (b"[1, 2]", r"config.json: must be a JSON object of config keys"),
])
def test_malformed_directories(tmp_path, write, message):
    if write is not None:
        (tmp_path / "config.json").write_bytes(write)
    with pytest.raises(WorkloadError, match=message):
        load_directory(tmp_path)


# --------------------------------------------------------------------------------------------------------------------
# Tracing


class _Block(torch.nn.Module):
    """A hand-written pre-LN transformer block (multi-head attention without a mask, GELU MLP)."""

    def __init__(self, d: int = 32, heads: int = 4, ffn: int = 64):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = torch.nn.LayerNorm(d), torch.nn.LayerNorm(d)
        self.q, self.k, self.v, self.o = (torch.nn.Linear(d, d) for _ in range(4))
        self.up, self.down = torch.nn.Linear(d, ffn), torch.nn.Linear(ffn, d, bias=False)

    def forward(self, x):
        b, t, d = x.shape
        h = self.ln1(x)
        q, k, v = (f(h).view(b, t, self.heads, -1).transpose(1, 2) for f in (self.q, self.k, self.v))
        att = torch.softmax(q @ k.transpose(-1, -2) * (d // self.heads) ** -0.5, dim=-1)
        x = x + self.o((att @ v).transpose(1, 2).reshape(b, t, d))
        return x + self.down(torch.nn.functional.gelu(self.up(self.ln2(x))))


def test_trace_hand_written_block():
    block = _Block()
    x = torch.randn(2, 5, 32)
    w = trace_module(block, (x,), precision=INT8)
    assert (w.batch, w.tokens, w.context, w.layers) == (2, 5, 5, (0,))
    got = [(op.name, op.kind_name, op.shape_text()) for op in w.blocks[0]]
    assert got == [
        ("ln1", "layer_norm", "10 x 32"), ("q", "gemm", "M=10 K=32 N=32"), ("k", "gemm", "M=10 K=32 N=32"),
        ("v", "gemm", "M=10 K=32 N=32"), ("score", "attn_score", "B=2 heads=4/4 d=8 q=5 kv=5"),
        ("softmax", "softmax", "40 x 5"), ("context", "attn_context", "B=2 heads=4/4 d=8 q=5 kv=5"),
        ("o", "gemm", "M=10 K=32 N=32"), ("add", "add", "2 x 10 x 32"), ("ln2", "layer_norm", "10 x 32"),
        ("up", "gemm", "M=10 K=32 N=64"), ("gelu", "gelu", "10 x 64"), ("down", "gemm", "M=10 K=64 N=32"),
        ("add_1", "add", "2 x 10 x 32"),
    ]
    assert w.blocks[0][0].params == ("ln1.weight", "ln1.bias") and w.blocks[0][-2].bias is None
    assert w.parameters == sum(p.numel() for p in block.parameters())
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        block(x)
    assert _matmul_flops(w) == counter.get_total_flops()


def test_trace_hf_gpt2_equals_the_named_workload():
    cfg = GPT2Config(n_embd=32, n_layer=3, n_head=4, n_positions=16, vocab_size=40, bos_token_id=0, eos_token_id=0)
    model = _real(cfg)
    ids = torch.randint(0, 40, (2, 6), generator=torch.Generator().manual_seed(1))
    traced = trace_module(model, (ids,), {"use_cache": False}, precision=INT8)
    named = build_workload(architecture_from_config(cfg, "gpt2"), "prefill", precision=INT8, batch=2, prompt=6,
                           logits="all")
    assert traced.layers == (0, 0, 0) and traced.parameters == named.parameters
    assert _matmul_flops(traced) == _matmul_flops(named)

    def matmuls(ops):
        return [(op.weight, op.m, op.k, op.n, op.layout, op.bias) if isinstance(op, Gemm) else
                (op.kind, op.batch, op.heads, op.kv_heads, op.head_dim, op.queries, op.kv_len, op.causal)
                for op in ops if isinstance(op, (Gemm, AttentionMatmul))]

    assert matmuls(traced.blocks[0]) == matmuls(named.blocks[0])
    kinds = [op.kind_name for op in traced.blocks[0] if isinstance(op, Vector)]
    assert kinds == [op.kind_name for op in named.blocks[0] if isinstance(op, Vector)]
    assert traced.epilogue[-1].weight == "transformer.wte.weight"  # the tied head, by its canonical name
    assert traced.read_tensors() <= {t.name for t in traced.tensors}
    assert workload_from_dict(json.loads(json.dumps(traced.to_dict()))) == traced


def test_trace_hf_llama_finds_grouped_query_attention():
    cfg = LlamaConfig(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=16, vocab_size=40, bos_token_id=0,
                      eos_token_id=0, pad_token_id=0)
    ids = torch.randint(0, 40, (1, 7), generator=torch.Generator().manual_seed(2))
    w = trace_module(_real(cfg), (ids,), {"use_cache": False}, precision=INT8)
    score = next(op for op in w.blocks[0] if isinstance(op, AttentionMatmul))
    assert (score.heads, score.kv_heads, score.queries, score.kv_len, score.causal) == (4, 2, 7, 7, True)
    assert [op.kind_name for op in w.blocks[0] if op.name in ("input_layernorm", "mlp.act_fn", "mlp.mul")] == \
        ["rms_norm", "silu", "mul"]


def test_trace_refuses_what_it_cannot_trace():
    class DataDependent(torch.nn.Module):
        def forward(self, x):
            return x * 2 if x.sum() > 0 else x

    with pytest.raises(WorkloadError, match=r"^trace: torch.export cannot trace DataDependent"):
        trace_module(DataDependent(), (torch.ones(2, 2),), precision=INT8)

    class Cumulative(torch.nn.Module):
        def forward(self, x):
            return torch.cumsum(x, dim=-1)

    with pytest.raises(WorkloadError, match=r"^trace: operator aten.cumsum \(cumsum\) in the top module"):
        trace_module(Cumulative(), (torch.ones(2, 2),), precision=INT8)


# --------------------------------------------------------------------------------------------------------------------
# Plain data: JSON round trip and YAML operator lists


def test_json_round_trip():
    for name, kw in [("gpt2", dict(phase="decode", context=100)), ("opt-350m", dict(phase="prefill", prompt=9)),
                     ("mixtral-8x7b", dict(phase="decode", context=50, batch=3, experts="expected"))]:
        p = precision_for(DEVICE, "mixed")
        w = build_workload(architecture(name), kw.pop("phase"), precision=p, **kw)
        again = workload_from_dict(json.loads(json.dumps(w.to_dict())))
        assert again == w


def test_yaml_operator_list(tmp_path):
    path = tmp_path / "ops.yaml"
    path.write_text(OPERATOR_LIST)
    w = load_operator_list(path)
    assert w.layers == (0, 0, 0) and len(w.blocks[0]) == 7 and w.source == f"yaml:{path}"
    qkv, o = w.blocks[0][1], w.blocks[0][6]
    assert qkv.weights == weight_format("int4", DEVICE.bitserial) and o.weights.datatypes == ("int8",)
    assert qkv.param_bits == DEVICE.bitserial.acc_bits and w.blocks[0][0].param_elems == 128
    assert {t.name: t.shape for t in w.tensors}["h.2.qkv"] == (192, 64)
    assert w.parameters == 100 * 64 + 3 * (128 + 192 * 64 + 192 + 64 * 64)
    assert workload_from_dict(json.loads(json.dumps(w.to_dict()))) == w


@pytest.mark.parametrize("edit,message", [
    (("batch: 2", "batch: 2\nbatch: 3"), r"4:1: duplicate key 'batch' \(first given on line 3\)"),
    (("queries: 1, kv_len: 16}", "queries: 1, kv_len: 16, kv_len: 17}"), r"14:\d+: duplicate key 'kv_len'"),
    (("n: 192,", "n: 192, nn: 1,"), r"blocks?\[?0?\]?\[1\]: unknown key 'nn'; allowed keys are name, m, k, n"),
    (("op: kv_write", "op: kvwrite"), r"block\[2\].op = 'kvwrite': must be one of gemm, attention, vector"),
    (("k: 64, n: 192", "k: 64"), r"block\[1\]: missing key 'n'"),
    (("rows: 8,", "rows: eight,"), r"block\[4\].rows = 'eight': must be an integer"),
    (("kind: softmax", "kind: softmin"), r"block\[4\]: p: kind = 'softmin': must be one of add, mul"),
    (("layers: 3", "layers: 0"), r"layers = 0: a count needs exactly one block and at least 1 layer"),
    (("context: 16", "context: 0"), r"top level: context = 0: must be a positive integer"),
    (("datatype: int4", "datatype: int9"), r"precision: datatype 'int9' \(did you mean 'int8'\?\)"),
    (("model: tiny", "model: tiny\nmodle: x"), r"top level: unknown key 'modle'"),
    (("name: o,", "name: qkv,"), r"top level: operator name 'qkv' appears twice in one section"),
])
def test_yaml_errors_name_file_key_and_rule(tmp_path, edit, message):
    path = tmp_path / "bad.yaml"
    old, new = edit
    assert old in OPERATOR_LIST
    path.write_text(OPERATOR_LIST.replace(old, new, 1))
    with pytest.raises(WorkloadError, match=rf"^{re.escape(str(path))}:.*{message}"):
        load_operator_list(path)


# --------------------------------------------------------------------------------------------------------------------
# Bad input and the command


@pytest.mark.parametrize("kw,message", [
    (dict(phase="decode", context=1025), r"^context 1025 > 1024 positions of gpt2: a decode step attends to at most "
                                         r"1024 tokens \(1023 cached \+ the new one\); use a context of 1024 or less$"),
    (dict(phase="decode", context=0), r"^context 0: must be at least 1 token$"),
    (dict(phase="prefill", prompt=-3), r"^prompt -3: must be at least 1 token$"),
    (dict(phase="prefill", prompt=2000), r"^prompt 2000 > 1024 positions of gpt2"),
    (dict(phase="decode", context=8, batch=0), r"^batch 0: must be at least 1 \(sequences processed together\)$"),
    (dict(phase="decode"), r"^context is missing"),
    (dict(phase="train", context=3), r"^phase 'train': must be one of prefill, decode$"),
])
def test_bad_workload_parameters(kw, message):
    with pytest.raises(WorkloadError, match=message):
        build_workload(architecture("gpt2"), kw.pop("phase"), precision=INT8, **kw)


def test_gpt2_allows_decode_at_1024():
    w = build_workload(architecture("gpt2"), "decode", precision=INT8, context=1024)
    assert w.context == 1024 and w.tokens == 1


def test_unknown_model_names_the_closest():
    with pytest.raises(WorkloadError, match=r"^unknown model 'llama2-7' \(did you mean 'llama2-7b'\?\); known models "
                                            r"are gpt2, gpt2-medium, .*mixtral-8x7b; or give the path"):
        architecture("llama2-7")


def _run(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as e:  # usage errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def test_models_command(capsys):
    code, out, _ = _run(capsys, "models")
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:3] == ["model", "params", "layers"]
    assert [ln.split()[0] for ln in lines[1:]] == list(KNOWN_MODELS)
    assert "64/8" in next(ln for ln in lines if ln.startswith("llama2-70b"))
    code, out, _ = _run(capsys, "models", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["mixtral-8x7b"]["experts"] == 8 and rows["gpt2"]["positions"] == 1024
    code, out, _ = _run(capsys, "models", "gpt2-xl", "--context", "1024")
    assert code == 0 and "layers 0-47 (x48)" in out and "M=1 K=1600 N=4800" in out
    code, out, _ = _run(capsys, "models", "llama2-7b", "--phase", "prefill", "--prompt", "512", "--batch", "2",
                        "--datatype", "int4", "--json")
    data = json.loads(out)
    assert code == 0 and data["workload"]["tokens"] == 512 and data["workload"]["batch"] == 2
    assert data["totals"]["flops"] == workload_from_dict(data["workload"]).totals()["flops"]


@pytest.mark.parametrize("argv,message", [
    (("models", "gpt2", "--context", "1025"), "context 1025 > 1024 positions of gpt2"),
    (("models", "gpt2", "--batch", "0"), "argument --batch: 0 must be at least 1"),
    (("models", "gtp2"), "unknown model 'gtp2' (did you mean 'gpt2'?)"),
    (("models", "gpt2", "--datatype", "fp5"), "datatype 'fp5'"),
    (("models", "mixtral-8x7b", "--experts", "9", "--context", "8"), "experts 9: must be between top_k (2) and 2"),
])
def test_models_command_errors(capsys, argv, message):
    code, out, err = _run(capsys, *argv)
    assert code == 2 and out == "" and len(err.splitlines()) == 1 and message in err


def test_startup_imports_neither_torch_nor_transformers():
    code = ("import sys, accel, accel.cli; accel.cli.build_parser(); import accel.mapping.workload; "
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_operator_classes_are_plain_frozen_data():
    w = build_workload(architecture("mixtral-8x7b"), "decode", precision=INT8, context=8)
    kinds = {type(p.op) for p in w.operators()}
    assert kinds == {Gemm, AttentionMatmul, Vector, KvWrite, Lookup}
    op = w.blocks[0][1]
    with pytest.raises(AttributeError):
        op.m = 2
    assert isinstance(hash(w.blocks[0]), int) and isinstance(w.precision.weights, WeightFormat)

