"""Models from Hugging Face ``transformers`` configs built locally, and from model directories in Hugging Face layout.

No network: a known name builds its config class (``GPT2Config``, ``OPTConfig``, ``LlamaConfig``, ``MixtralConfig``)
from the published hyper-parameters written below; a directory is read with
``AutoConfig.from_pretrained(dir, local_files_only=True)``. ``transformers`` (and with it torch) is imported inside
the functions that need it, so ``import accel`` and the other commands stay fast.

A directory may hold weights (``model.safetensors``, or shards ``model-0000x-of-0000y.safetensors`` with
``model.safetensors.index.json``): only their headers are read, every tensor of the model is checked against the
shape the config implies, and the stored dtypes are recorded. A mixed weight format counts its exact mix from them
(:func:`checkpoint_formats`: every matrix quantised with :func:`accel.numerics.quantize_weights`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Union

from accel.config import BitSerialConfig
from accel.files import read_json

from .ops import WeightFormat, WorkloadError
from .transformer import FAMILIES, Architecture, model_tensors, weight_matrices

__all__ = ["KNOWN_MODELS", "known_config", "architecture", "architecture_from_config", "Checkpoint",
           "load_directory", "checkpoint_formats", "resolve_model"]


def _gpt2(n_embd: int, n_layer: int, n_head: int) -> Any:
    from transformers import GPT2Config

    # all four sizes: n_positions 1024, vocab_size 50257, activation_function gelu_new, n_inner null (4 x n_embd),
    # tie_word_embeddings true
    return GPT2Config(n_embd=n_embd, n_layer=n_layer, n_head=n_head, n_positions=1024, vocab_size=50257,
                      activation_function="gelu_new")


def _opt(hidden: int, ffn: int, layers: int, heads: int, embed: int, pre_norm: bool = True) -> Any:
    from transformers import OPTConfig

    # all sizes: max_position_embeddings 2048, vocab_size 50272, activation_function relu, enable_bias true,
    # tie_word_embeddings true
    return OPTConfig(hidden_size=hidden, ffn_dim=ffn, num_hidden_layers=layers, num_attention_heads=heads,
                     word_embed_proj_dim=embed, do_layer_norm_before=pre_norm, max_position_embeddings=2048,
                     vocab_size=50272, activation_function="relu", enable_bias=True)


def _llama(hidden: int, ffn: int, layers: int, heads: int, kv_heads: int, positions: int, vocab: int,
           rope_theta: float) -> Any:
    from transformers import LlamaConfig

    # hidden_act silu, rms_norm_eps 1e-5, tie_word_embeddings false, no attention or MLP biases
    return LlamaConfig(hidden_size=hidden, intermediate_size=ffn, num_hidden_layers=layers,
                       num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=positions,
                       vocab_size=vocab, rms_norm_eps=1e-5, rope_theta=rope_theta, tie_word_embeddings=False,
                       hidden_act="silu")


def _mixtral() -> Any:
    from transformers import MixtralConfig

    # huggingface.co/mistralai/Mixtral-8x7B-v0.1/blob/main/config.json
    return MixtralConfig(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                         num_key_value_heads=8, max_position_embeddings=32768, vocab_size=32000,
                         num_local_experts=8, num_experts_per_tok=2, rms_norm_eps=1e-5, rope_theta=1e6,
                         sliding_window=None, tie_word_embeddings=False, hidden_act="silu")


#: Known model names -> a function building their ``transformers`` config. Every number is the published
#: ``config.json`` of the Hub repository named in the comment (huggingface.co/<repo>/blob/main/config.json).
KNOWN_MODELS: dict[str, Callable[[], Any]] = {
    "gpt2": lambda: _gpt2(768, 12, 12),                       # openai-community/gpt2
    "gpt2-medium": lambda: _gpt2(1024, 24, 16),               # openai-community/gpt2-medium
    "gpt2-large": lambda: _gpt2(1280, 36, 20),                # openai-community/gpt2-large
    "gpt2-xl": lambda: _gpt2(1600, 48, 25),                   # openai-community/gpt2-xl
    "opt-125m": lambda: _opt(768, 3072, 12, 12, 768),         # facebook/opt-125m
    # facebook/opt-350m: word_embed_proj_dim 512 (project_in/out 512 <-> 1024), do_layer_norm_before false
    "opt-350m": lambda: _opt(1024, 4096, 24, 16, 512, pre_norm=False),
    "opt-1.3b": lambda: _opt(2048, 8192, 24, 32, 2048),       # facebook/opt-1.3b
    "opt-2.7b": lambda: _opt(2560, 10240, 32, 32, 2560),      # facebook/opt-2.7b
    "opt-6.7b": lambda: _opt(4096, 16384, 32, 32, 4096),      # facebook/opt-6.7b
    # meta-llama/Llama-2-{7b,13b,70b}-hf: max_position_embeddings 4096, vocab_size 32000, rope_theta 10000;
    # 70b: grouped-query attention with 8 key/value heads
    "llama2-7b": lambda: _llama(4096, 11008, 32, 32, 32, 4096, 32000, 10000.0),
    "llama2-13b": lambda: _llama(5120, 13824, 40, 40, 40, 4096, 32000, 10000.0),
    "llama2-70b": lambda: _llama(8192, 28672, 80, 64, 8, 4096, 32000, 10000.0),
    # meta-llama/Meta-Llama-3-8B: 8 key/value heads, 8192 positions, vocab_size 128256, rope_theta 500000
    "llama3-8b": lambda: _llama(4096, 14336, 32, 32, 8, 8192, 128256, 500000.0),
    "mixtral-8x7b": _mixtral,                                 # mistralai/Mixtral-8x7B-v0.1
}


def _unknown_model(name: str) -> WorkloadError:
    import difflib

    close = difflib.get_close_matches(name, list(KNOWN_MODELS), n=1, cutoff=0.4)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return WorkloadError(f"unknown model {name!r}{hint}; known models are {', '.join(KNOWN_MODELS)}; or give the "
                         f"path of a Hugging Face model directory (config.json)")


def known_config(name: str) -> Any:
    """The ``transformers`` config of a known model name, built locally."""
    if name not in KNOWN_MODELS:
        raise _unknown_model(name)
    return KNOWN_MODELS[name]()


def _activation(name: str, value: str) -> str:
    if value.startswith("gelu"):
        return "gelu"
    if value in ("relu", "silu"):
        return value
    if value == "swish":
        return "silu"
    raise WorkloadError(f"{name}: activation {value!r} is not supported (gelu*, relu, silu)")


def _unsupported(name: str, cfg: Any, flags: dict[str, Any]) -> None:
    """Refuse config options that change the operators in ways this model does not build."""
    for key, plain in flags.items():
        value = getattr(cfg, key, plain)
        if value != plain:
            raise WorkloadError(f"{name}: {key} = {value!r} is not supported (only {plain!r})")


def architecture_from_config(cfg: Any, name: str) -> Architecture:
    """The :class:`Architecture` of a ``transformers`` config (GPT-2, OPT, LLaMA or Mixtral)."""
    kind = getattr(cfg, "model_type", None)
    tied = bool(getattr(cfg, "tie_word_embeddings", False))
    if kind == "gpt2":
        _unsupported(name, cfg, {"add_cross_attention": False})
        d = cfg.n_embd
        return Architecture(name, "gpt2", cfg.n_layer, d, cfg.n_head, cfg.n_head, d // cfg.n_head,
                            cfg.n_inner or 4 * d, cfg.vocab_size, cfg.n_positions, 0, 0, d, True, True, tied,
                            _activation(name, cfg.activation_function), True)
    if kind == "opt":
        _unsupported(name, cfg, {"layer_norm_elementwise_affine": True})
        d = cfg.hidden_size
        final = bool(cfg.do_layer_norm_before and not getattr(cfg, "_remove_final_layer_norm", False))
        return Architecture(name, "opt", cfg.num_hidden_layers, d, cfg.num_attention_heads, cfg.num_attention_heads,
                            d // cfg.num_attention_heads, cfg.ffn_dim, cfg.vocab_size, cfg.max_position_embeddings,
                            0, 0, cfg.word_embed_proj_dim, bool(cfg.do_layer_norm_before), final, tied,
                            _activation(name, cfg.activation_function), bool(cfg.enable_bias))
    if kind in ("llama", "mixtral"):
        flags = {"attention_bias": False, "mlp_bias": False} if kind == "llama" else {"attention_bias": False}
        _unsupported(name, cfg, flags)
        heads = cfg.num_attention_heads
        kv = getattr(cfg, "num_key_value_heads", None) or heads
        hd = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
        experts = cfg.num_local_experts if kind == "mixtral" else 0
        top_k = cfg.num_experts_per_tok if kind == "mixtral" else 0
        return Architecture(name, kind, cfg.num_hidden_layers, cfg.hidden_size, heads, kv, hd,
                            cfg.intermediate_size, cfg.vocab_size, cfg.max_position_embeddings, experts, top_k,
                            cfg.hidden_size, True, True, tied, _activation(name, cfg.hidden_act), False)
    raise WorkloadError(f"{name}: model_type {kind!r} is not supported; supported are {', '.join(FAMILIES)}")


def architecture(name: str) -> Architecture:
    """The :class:`Architecture` of a known model name."""
    return architecture_from_config(known_config(name), name)


# --------------------------------------------------------------------------------------------------------------------
# Model directories and checkpoints


@dataclass(frozen=True)
class Checkpoint:
    """The weights of a model directory (headers only).

    Parameters
    ----------
    directory:
        The model directory.
    location:
        Tensor name (the model's, see :func:`mapping.workload.model_tensors`) -> (file name, key in that file).
    dtypes:
        ``(tensor, dtype)`` of every tensor of the model, as stored (``"F32"``, ``"BF16"``, ...).
    unused:
        Keys in the files that are no tensor of the model (buffers such as GPT-2's ``attn.bias``).
    """

    directory: Path
    location: dict[str, tuple[str, str]]
    dtypes: tuple[tuple[str, str], ...]
    unused: tuple[str, ...]


def _read_json(path: Path) -> Any:
    return read_json(path, "JSON file", WorkloadError)


def _headers(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """Key -> (shape, dtype) of a safetensors file, from its header."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="np") as f:
            return {k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()}
    except Exception as e:  # safetensors raises its own SafetensorError (and OSError) on a bad file
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise WorkloadError(f"{path}: not a readable safetensors file ({first})") from None


def _weight_files(directory: Path) -> list[Path]:
    single = directory / "model.safetensors"
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        data = _read_json(index)
        if not isinstance(data, dict) or not isinstance(data.get("weight_map"), dict):
            raise WorkloadError(f"{index}: must be a JSON object with a 'weight_map' of tensor names to shard files")
        files = []
        for shard in dict.fromkeys(data["weight_map"].values()):
            p = directory / str(shard)
            if not p.is_file():
                raise WorkloadError(f"{index}: names shard {shard!r}, which is not in {directory}")
            files.append(p)
        return files
    if single.is_file():
        return [single]
    shards = sorted(directory.glob("model-*-of-*.safetensors"))
    if shards:
        raise WorkloadError(f"{directory}: has shards ({shards[0].name}, ...) but no model.safetensors.index.json; "
                            f"add the index that save_pretrained writes")
    return []


def _check_checkpoint(arch: Architecture, directory: Path, files: list[Path]) -> Checkpoint:
    found: dict[str, tuple[Path, tuple[int, ...], str]] = {}
    for f in files:
        for key, (shape, dtype) in _headers(f).items():
            found[key] = (f, shape, dtype)
    location, dtypes, used = {}, [], set()
    for t in model_tensors(arch):
        bare = t.name[len(arch.base_prefix):] if t.name.startswith(arch.base_prefix) else t.name
        key = t.name if t.name in found else bare if bare in found else None
        if key is None:
            where = files[0].name if len(files) == 1 else f"the {len(files)} shards"
            raise WorkloadError(f"{directory}: tensor {t.name} (shape {t.shape} by config.json) is missing from "
                                f"{where}")
        f, shape, dtype = found[key]
        if shape != t.shape:
            raise WorkloadError(f"{f}: tensor {key} has shape {shape}, but config.json gives {t.shape}; the weights "
                                f"do not belong to this config")
        location[t.name] = (f.name, key)
        dtypes.append((t.name, dtype))
        used.add(key)
    return Checkpoint(directory, location, tuple(dtypes), tuple(sorted(set(found) - used)))


def load_directory(path: Union[str, Path]) -> tuple[Architecture, Union[Checkpoint, None]]:
    """Architecture (from ``config.json``) and checkpoint (when weights are there, checked) of a model directory."""
    directory = Path(path)
    config = directory / "config.json"
    if not directory.is_dir():
        raise WorkloadError(f"{directory}: not a directory (a Hugging Face model directory holds config.json)")
    if not config.is_file():
        raise WorkloadError(f"{directory}: no config.json; a Hugging Face model directory holds config.json and "
                            f"optionally model.safetensors")
    data = _read_json(config)
    if not isinstance(data, dict):
        raise WorkloadError(f"{config}: must be a JSON object of config keys")
    kind = data.get("model_type")
    if kind not in FAMILIES:
        what = "has no model_type" if kind is None else f"model_type {kind!r} is not supported"
        raise WorkloadError(f"{config}: {what}; supported are {', '.join(FAMILIES)} (set \"model_type\" to one of "
                            f"them)")
    from transformers import AutoConfig

    try:
        cfg = AutoConfig.from_pretrained(str(directory), local_files_only=True)
    except Exception as e:  # transformers (and huggingface_hub's strict dataclasses) refuse a bad config in many ways
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise WorkloadError(f"{config}: transformers refuses it ({first})") from None
    arch = architecture_from_config(cfg, directory.name)
    files = _weight_files(directory)
    return arch, (_check_checkpoint(arch, directory, files) if files else None)


def checkpoint_formats(arch: Architecture, checkpoint: Checkpoint, spec: str, bitserial: BitSerialConfig,
                       group_size: Union[int, None] = None) -> tuple[dict[str, WeightFormat], WeightFormat]:
    """The exact mix of a mixed datatype spec in every weight matrix of a checkpoint, and over the whole model.

    Each matrix (rows = outputs or table rows, groups along ``K``, zero-padded to whole groups as storage pads it)
    is quantised by :func:`accel.numerics.quantize_weights` over the spec's datatypes with the group size and the
    device's scale bits; the fraction of groups that chose each datatype becomes that matrix's format. The model's
    format weighs the matrices by their groups.
    """
    import numpy as np
    from safetensors import safe_open

    from accel.numerics import quantize_weights

    from .formats import mixed_format, parse_datatype

    datatypes, _ = parse_datatype(spec)
    g = bitserial.group_size if group_size is None else group_size
    out: dict[str, WeightFormat] = {}
    total = np.zeros(len(datatypes))
    for name, (k, n, layout) in weight_matrices(arch).items():
        file, key = checkpoint.location[name]
        with safe_open(str(checkpoint.directory / file), framework="pt") as f:
            w = f.get_tensor(key).float().numpy()
        w = w.T if layout == "kn" else w
        w = np.concatenate([w, np.zeros((n, -k % g), w.dtype)], axis=1)
        qw = quantize_weights(w, datatypes, g, bitserial.scale_bits)
        counts = np.array([np.count_nonzero(qw.dtypes == d) for d in datatypes])
        total += counts
        out[name] = mixed_format(spec, datatypes, tuple(float(c) for c in counts / counts.sum()), bitserial, g)
    whole = mixed_format(spec, datatypes, tuple(float(c) for c in total / total.sum()), bitserial, g)
    return out, whole


def resolve_model(name: str) -> tuple[Architecture, Union[Checkpoint, None]]:
    """A known model name, or the path of a model directory."""
    if name in KNOWN_MODELS:
        return architecture(name), None
    if "/" in name or Path(name).is_dir():
        return load_directory(name)
    raise _unknown_model(name)
