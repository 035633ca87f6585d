"""Hugging Face model folders of GPT-2 and BERT, read into this package's GPT and BERT networks and written back.

A folder as ``save_pretrained`` writes it: ``config.json`` (read as data: ``model_type`` must be ``gpt2`` or
``bert``, nothing it names is imported), weights as ``model.safetensors`` (sharded or not) or ``pytorch_model.bin``
(read with ``torch.load(weights_only=True)``: tensors only, no pickled objects), and the tokenizer
(gen_lightning/data/text/hf_tokenizer.py). ``read`` maps it onto the parameter names of
gen_lightning/transformer/nets.py, with the hyperparameters that make the networks hold it (``TransformerConfig``'s
layout: GPT-2 is pre-norm with tanh-GELU; BERT is post-norm with a LayerNorm on the embeddings, epsilon 1e-12 and
token-type embeddings). ``init_from=FOLDER`` then starts a GPT, a BERT or a text classifier from it
(gen_lightning/run/init_from.py). ``export_hf`` writes a GPT or BERT module the other way, so that
``transformers.GPT2LMHeadModel.from_pretrained(DIR)`` / ``BertForMaskedLM.from_pretrained(DIR)`` load it.

Name maps (ours <- theirs): GPT-2's ``Conv1D`` weights are stored (in, out) and are transposed; BERT's query, key
and value are concatenated into one ``qkv``; BERT's embedding gets one more row, this package's [MASK] symbol
(id ``vocab_size``, see transformer/bert.py), copied from the tokenizer's [MASK] row; BERT's pooler and a sequence
classifier's output layer become a text classifier's head (gen_lightning/classifier/nets.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from gen_lightning.data.text.hf_tokenizer import HFTokenizer, read_folder
from gen_lightning.files import write_json, write_text, write_with

TARGETS = {"gpt2": "gen_lightning.transformer.gpt.GPT", "bert": "gen_lightning.transformer.bert.BERT"}
ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu"}
BODY = "net.transformer."


class HFError(ValueError):
    """A Hugging Face folder this package cannot hold; the message names the key and what is allowed."""


@dataclass
class HFModel:
    """A folder read and mapped: the project class its weights fit, its hyperparameters (tokenizer included) and
    its tensors under this package's names (a language model's; a classifier's head as ``head.*``)."""

    folder: Path
    target: str
    hparams: dict
    state_dict: dict[str, torch.Tensor]


# ---- reading -----------------------------------------------------------------------------------------------
def read_config(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.is_file():
        raise HFError(
            f"{folder} has no config.json: give a Hugging Face model folder (as save_pretrained writes it), or for "
            "a run of this project its checkpoint (RUN/checkpoints/last.ckpt)"
        )
    config = json.loads(path.read_text(encoding="utf-8"))
    if config.get("model_type") not in TARGETS:
        raise HFError(
            f"{path}: model_type={config.get('model_type')!r} is not supported; this package holds "
            f"{sorted(TARGETS)} (GPT-2 decoders and BERT encoders)"
        )
    return config


def read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the folder: safetensors (one file or shards), else pytorch_model.bin (weights only)."""
    from safetensors.torch import load_file

    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        return {k: v for shard in shards for k, v in load_file(folder / shard).items()}
    if (folder / "model.safetensors").is_file():
        return load_file(folder / "model.safetensors")
    if (folder / "pytorch_model.bin").is_file():
        return torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
    raise HFError(f"{folder} has no weights (model.safetensors, its shards, or pytorch_model.bin)")


def _activation(config: dict, key: str) -> str:
    value = config.get(key, "gelu_new" if key == "activation_function" else "gelu")
    if value not in ACTIVATIONS:
        raise HFError(f"config.json: {key}={value!r} is not supported; allowed: {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[value]


def _refuse(config: dict, rules: dict) -> None:
    """``rules``: key -> (the value this package can hold, its default when absent)."""
    for key, (allowed, default) in rules.items():
        if config.get(key, default) != allowed:
            raise HFError(f"config.json: {key}={config.get(key)!r} is not supported (only {allowed!r})")


def shape_of(config: dict) -> dict:
    """This package's hyperparameters for the network of ``config`` (layout options only where not default)."""
    if config["model_type"] == "gpt2":
        _refuse(config, {"tie_word_embeddings": (True, True), "scale_attn_by_inverse_layer_idx": (False, False),
                         "add_cross_attention": (False, False), "scale_attn_weights": (True, True)})  # fmt: skip
        width, inner = config["n_embd"], config.get("n_inner")
        shape = dict(block_size=config["n_positions"], num_layers=config["n_layer"], num_heads=config["n_head"],
                     hidden_dim=width, bias=True, activation=_activation(config, "activation_function"),
                     norm="pre", norm_eps=config.get("layer_norm_epsilon", 1e-5), mlp_dim=inner,
                     token_types=0)  # fmt: skip
    else:
        _refuse(config, {"tie_word_embeddings": (True, True), "is_decoder": (False, False),
                         "position_embedding_type": ("absolute", "absolute")})  # fmt: skip
        width, inner = config["hidden_size"], config.get("intermediate_size")
        shape = dict(block_size=config["max_position_embeddings"], num_layers=config["num_hidden_layers"],
                     num_heads=config["num_attention_heads"], hidden_dim=width, bias=True,
                     activation=_activation(config, "hidden_act"), norm="post", norm_eps=config.get("layer_norm_eps",
                     1e-12), mlp_dim=inner, token_types=config.get("type_vocab_size", 2))  # fmt: skip
    shape["mlp_dim"] = None if inner in (None, 4 * width) else inner
    return shape


def _strip(weights: dict, base: str, marker: str) -> dict:
    """Tensors of the base model without its prefix (``transformer.`` / ``bert.``) when saved under a head model."""
    prefixed = any(k.startswith(base + marker) for k in weights)
    return {k.removeprefix(base) if prefixed else k: v for k, v in weights.items()}


def gpt2_names(num_layers: int) -> list[tuple[str, str, bool]]:
    """(ours under ``net.transformer.``, GPT-2's under ``transformer.``, transposed) for every parameter."""
    names = [("tok_emb.weight", "wte.weight", False), ("pos_emb.weight", "wpe.weight", False)]
    for i in range(num_layers):
        for ours, theirs in (("ln1", "ln_1"), ("attn.qkv", "attn.c_attn"), ("attn.proj", "attn.c_proj"),
                             ("ln2", "ln_2"), ("mlp.fc", "mlp.c_fc"), ("mlp.proj", "mlp.c_proj")):  # fmt: skip
            conv = not ours.startswith("ln")  # GPT-2's Conv1D keeps its weight as (in, out)
            names += [(f"blocks.{i}.{ours}.weight", f"h.{i}.{theirs}.weight", conv)]
            names += [(f"blocks.{i}.{ours}.bias", f"h.{i}.{theirs}.bias", False)]
    return names + [("ln_f.weight", "ln_f.weight", False), ("ln_f.bias", "ln_f.bias", False)]


def bert_names(num_layers: int) -> list[tuple[str, tuple[str, ...]]]:
    """(ours under ``net.transformer.``, BERT's under ``bert.``: several are concatenated) for every parameter
    but the word embeddings (one row more here)."""
    emb = "embeddings."
    names = [("pos_emb.weight", (emb + "position_embeddings.weight",)),
             ("type_emb.weight", (emb + "token_type_embeddings.weight",)),
             ("ln_emb.weight", (emb + "LayerNorm.weight",)), ("ln_emb.bias", (emb + "LayerNorm.bias",))]  # fmt: skip
    for i in range(num_layers):
        layer = f"encoder.layer.{i}."
        for p in ("weight", "bias"):
            qkv = tuple(f"{layer}attention.self.{n}.{p}" for n in ("query", "key", "value"))
            names += [(f"blocks.{i}.attn.qkv.{p}", qkv),
                      (f"blocks.{i}.attn.proj.{p}", (f"{layer}attention.output.dense.{p}",)),
                      (f"blocks.{i}.ln1.{p}", (f"{layer}attention.output.LayerNorm.{p}",)),
                      (f"blocks.{i}.mlp.fc.{p}", (f"{layer}intermediate.dense.{p}",)),
                      (f"blocks.{i}.mlp.proj.{p}", (f"{layer}output.dense.{p}",)),
                      (f"blocks.{i}.ln2.{p}", (f"{layer}output.LayerNorm.{p}",))]  # fmt: skip
    return names


# BERT's heads: the MLM head's transform and output bias, the pooler, a sequence classifier's output layer.
BERT_HEADS = {"net.dense.weight": "cls.predictions.transform.dense.weight",
              "net.dense.bias": "cls.predictions.transform.dense.bias",
              "net.ln.weight": "cls.predictions.transform.LayerNorm.weight",
              "net.ln.bias": "cls.predictions.transform.LayerNorm.bias", "net.out_bias": "cls.predictions.bias",
              "head.dense.weight": "bert.pooler.dense.weight", "head.dense.bias": "bert.pooler.dense.bias",
              "head.out.weight": "classifier.weight", "head.out.bias": "classifier.bias"}  # fmt: skip


def map_gpt2(weights: dict, num_layers: int) -> dict[str, torch.Tensor]:
    base = _strip(weights, "transformer.", "wte.")
    missing = [theirs for _, theirs, _ in gpt2_names(num_layers) if theirs not in base]
    if missing:
        raise HFError(f"the GPT-2 weights lack {missing[:4]}")
    out = {BODY + ours: base[theirs].t().contiguous() if conv else base[theirs]
           for ours, theirs, conv in gpt2_names(num_layers)}  # fmt: skip
    out["net.head.weight"] = out[BODY + "tok_emb.weight"]  # tied, as in GPT-2
    return out


def map_bert(weights: dict, num_layers: int, mask_id: int | None) -> dict[str, torch.Tensor]:
    # Files of the original BERT release name the LayerNorm parameters gamma and beta.
    weights = {k.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias"): v
               for k, v in weights.items()}  # fmt: skip
    heads = {k: weights[v] for k, v in BERT_HEADS.items() if v in weights}
    if "net.out_bias" not in heads and "cls.predictions.decoder.bias" in weights:
        heads["net.out_bias"] = weights["cls.predictions.decoder.bias"]
    base = _strip(weights, "bert.", "embeddings.")
    missing = [t for _, theirs in bert_names(num_layers) for t in theirs if t not in base]
    if missing:
        raise HFError(f"the BERT weights lack {missing[:4]}")
    out = {BODY + ours: torch.cat([base[t] for t in theirs]) for ours, theirs in bert_names(num_layers)}
    words = base["embeddings.word_embeddings.weight"]  # (V, C)
    extra = words[mask_id] if mask_id is not None else words.mean(dim=0)  # this package's [MASK] row
    out[BODY + "tok_emb.weight"] = torch.cat([words, extra[None]])  # (V + 1, C)
    if "head.dense.weight" not in heads and "pooler.dense.weight" in base:  # a bare BertModel's pooler
        heads |= {"head.dense.weight": base["pooler.dense.weight"], "head.dense.bias": base["pooler.dense.bias"]}
    return out | heads


def read(source: str | Path) -> HFModel:
    """The Hugging Face folder ``source`` mapped onto this package's networks (see the file docstring)."""
    folder = Path(source)
    config = read_config(folder)
    shape = shape_of(config)
    try:
        tokenizer = read_folder(folder, config["vocab_size"])
    except (FileNotFoundError, ValueError) as err:
        raise HFError(f"{folder}: {err}") from err
    weights = {k: v.float() for k, v in read_weights(folder).items()}
    if config["model_type"] == "gpt2":
        state = map_gpt2(weights, shape["num_layers"])
    else:
        state = map_bert(weights, shape["num_layers"], tokenizer.mask_id)
    return HFModel(folder, TARGETS[config["model_type"]], {"tokenizer": tokenizer.to_config(), **shape}, state)


# ---- writing -------------------------------------------------------------------------------------------------
def _layout(hparams: dict) -> dict:
    from gen_lightning.transformer.nets import TransformerConfig

    return {**TransformerConfig.layout_defaults(), **{k: hparams[k] for k in TransformerConfig.layout_defaults()
                                                     if k in hparams}}  # fmt: skip


def _bias(state: dict, name: str, width: int) -> torch.Tensor:
    """A bias of ``state``, zeros where the network has none (``bias=false``): the same function."""
    return state[name] if name in state else torch.zeros(width)


def gpt2_export(state: dict, h: dict, tokenizer) -> tuple[dict, dict]:
    """GPT-2's config and tensors of a GPT module's ``state`` (no prefix) and hyperparameters ``h``."""
    lay = _layout(h)
    if lay["norm"] != "pre" or lay["token_types"]:
        raise HFError("GPT-2's layout is pre-norm without token types: this model has norm=post or token types")
    act = {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu"}[lay["activation"]]
    width, inner = h["hidden_dim"], lay["mlp_dim"] or 4 * h["hidden_dim"]
    ends = {"bos_token_id": getattr(tokenizer, "bos_id", None), "eos_token_id": getattr(tokenizer, "eos_id", None)}
    config = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": tokenizer.vocab_size, **ends,
              "n_positions": h["block_size"], "n_embd": width, "n_layer": h["num_layers"], "n_head": h["num_heads"],
              "n_inner": lay["mlp_dim"], "activation_function": act, "layer_norm_epsilon": lay["norm_eps"],
              "tie_word_embeddings": True}  # fmt: skip
    sizes = {"qkv": 3 * width, "fc": inner}
    out = {}
    for ours, theirs, conv in gpt2_names(h["num_layers"]):
        key = BODY + ours
        if ours.endswith("bias"):
            out["transformer." + theirs] = _bias(state, key, sizes.get(ours.split(".")[-2], width))
        else:
            out["transformer." + theirs] = state[key].t().contiguous() if conv else state[key]
    return config, out


def bert_export(state: dict, h: dict, tokenizer) -> tuple[dict, dict]:
    """BERT's config and tensors (``BertForMaskedLM``) of a post-norm BERT module's ``state``."""
    lay = _layout(h)
    if lay["norm"] != "post":
        raise HFError(
            "BERT's layout is post-norm (LayerNorm after each sub-layer and on the embeddings); this model is "
            "pre-norm (norm=pre), which no BertForMaskedLM holds: train it with model.norm=post to export it"
        )
    width, words = h["hidden_dim"], state[BODY + "tok_emb.weight"]  # (V + 1, C): the last row is [MASK]
    mask_id = getattr(tokenizer, "mask_id", None)
    if mask_id is not None:  # the tokenizer's [MASK] gets the row this package trained as [MASK]
        words = words[:-1].clone()
        words[mask_id] = state[BODY + "tok_emb.weight"][-1]
    out_bias = state["net.out_bias"]
    if mask_id is None:  # no [MASK] in the tokenizer: id V is [MASK], as in this package
        out_bias = torch.cat([out_bias, out_bias.new_zeros(1)])
    types = lay["token_types"] or 1
    config = {"model_type": "bert", "architectures": ["BertForMaskedLM"], "vocab_size": words.size(0),
              "hidden_size": width, "num_hidden_layers": h["num_layers"], "num_attention_heads": h["num_heads"],
              "intermediate_size": lay["mlp_dim"] or 4 * width, "hidden_act": {"gelu_tanh": "gelu_new"}.get(
              lay["activation"], lay["activation"]), "max_position_embeddings": h["block_size"],
              "type_vocab_size": types, "layer_norm_eps": lay["norm_eps"], "tie_word_embeddings": True,
              "pad_token_id": getattr(tokenizer, "pad_id", None) or 0}  # fmt: skip
    sizes = {"qkv": 3 * width, "fc": config["intermediate_size"]}
    types_weight = state.get(BODY + "type_emb.weight", torch.zeros(types, width))  # none: zeros, the same sum
    out = {"bert.embeddings.word_embeddings.weight": words}
    out["bert.embeddings.token_type_embeddings.weight"] = types_weight
    for ours, theirs in bert_names(h["num_layers"]):
        if ours.startswith("type_emb"):
            continue
        key = BODY + ours
        value = _bias(state, key, sizes.get(ours.split(".")[-2], width)) if ours.endswith("bias") else state[key]
        for name, part in zip(theirs, value.chunk(len(theirs)), strict=True):
            out["bert." + name] = part.contiguous()
    heads = {k: v for k, v in BERT_HEADS.items() if k.startswith("net.")}
    out |= {theirs: state[ours] for ours, theirs in heads.items() if ours != "net.out_bias"}
    out["cls.predictions.bias"] = out_bias
    return config, out


def export_hf(module, out_dir: str | Path) -> Path:
    """Write a GPT or BERT module (gen_lightning/transformer/) into Hugging Face's layout in ``out_dir``:
    config.json, model.safetensors and the tokenizer (tokenizer.json where it is a ``tokenizers`` model, i.e. a
    Hugging Face or subword tokenizer; this package's own description in gen_lightning_tokenizer.json always)."""
    from safetensors.torch import save_file

    name = type(module).__name__
    if name not in ("GPT", "BERT"):
        raise HFError(f"export to Hugging Face's layout takes a GPT or BERT module, not a {name}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    h, state = dict(module.hparams), {k: v.detach().cpu().float() for k, v in module.state_dict().items()}
    if name == "GPT":
        config, tensors = gpt2_export(state, h, module.tokenizer)
    else:
        config, tensors = bert_export(state, h, module.tokenizer)
    write_json(out / "config.json", config)
    write_with(out / "model.safetensors", lambda p: save_file(tensors, str(p), metadata={"format": "pt"}))
    write_tokenizer(module.tokenizer, out)
    return out


def write_tokenizer(tokenizer, out: Path) -> None:
    description = tokenizer.to_config()
    write_json(out / "gen_lightning_tokenizer.json", description)
    if "model" not in description:  # char and byte tokenizers are no ``tokenizers`` models
        return
    write_text(out / "tokenizer.json", description["model"])
    from tokenizers import Tokenizer

    model = Tokenizer.from_str(description["model"])
    ids = {role: description.get(f"{role}_id") for role in ("pad", "bos", "eos", "unk", "cls", "sep", "mask")}
    special = {f"{role}_token": model.id_to_token(i) for role, i in ids.items() if i is not None}
    write_json(out / "tokenizer_config.json", {"tokenizer_class": "PreTrainedTokenizerFast", **special})


__all__ = ["HFError", "HFModel", "HFTokenizer", "export_hf", "read"]
