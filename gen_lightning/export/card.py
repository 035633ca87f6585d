"""The model card (README.md) of an export: what the model is, what it was trained on, how it scored, how to load it.

The facts come from the export's config and from the run the checkpoint belongs to, when it is in one
(run_dir.py): ``config.yaml`` (the data config, the seed), ``metrics.json`` (the validation values at the
checkpoint's step, with the metric protocol's card: its splits, subset sizes, seeds, package versions) and the
evaluations of that checkpoint (``gen-lightning evaluate``'s ``<name>[.split].eval.json`` beside it, named by
run_dir.EvaluationFiles; a study's ``evaluations/*.json``). The run's files are only read as text here: nothing
they name is imported.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from omegaconf import OmegaConf

from gen_lightning.run_dir import EvaluationFiles, RunDir
from gen_lightning.tasks import describe

SPLIT_TAGS = ("", ".train", ".val", ".test")  # evaluate's files: the protocol's split, then another split named
TOKENIZER_FILES = {"tokenizer": "the tokenizer", "source_tokenizer": "the tokenizer of the source side"}
SHOWN_TOKENIZER_KEYS = ("kind", "algorithm", "pre_tokenizer", "vocab_size", "file")


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def run_facts(ckpt_path: Path, ckpt: dict) -> dict:
    """What the checkpoint's run says about it: ``{"run_dir", "data", "seed", "metrics", "protocol", "monitor",
    "status", "evaluations"}``, the keys present where the run has the files."""
    run = RunDir.of_checkpoint(ckpt_path)
    facts: dict = {}
    if run.config.is_file():
        try:
            cfg = OmegaConf.to_container(OmegaConf.load(run.config), resolve=False)
        except Exception:  # an unreadable config only leaves the card without it
            cfg = None
        if isinstance(cfg, dict):
            facts.update(run_dir=str(run.path), data=cfg.get("data"), seed=cfg.get("seed"))
    step = facts["step"] = ckpt.get("global_step")
    summary = _read_json(run.metrics)
    if summary is not None:
        rows = [r for r in summary.get("history", []) if r.get("step") == step]
        facts.update(
            metrics={k: v for k, v in (rows[-1] if rows else {}).items() if k.startswith(("val/", "test/"))},
            protocol=summary.get("protocol"),
            monitor=summary.get("monitor"),
            status=summary.get("status"),
        )
    facts["evaluations"] = evaluations(run, ckpt_path, step)
    return facts


def evaluations(run: RunDir, ckpt_path: Path, step: int | None) -> list[dict]:
    """The evaluations of this checkpoint at this step: ``gen-lightning evaluate``'s, then a study's."""
    found = []
    for tag in SPLIT_TAGS:
        path = EvaluationFiles.of(ckpt_path, tag).result
        record = _read_json(path)
        if record and (record.get("protocol") or {}).get("global_step", step) == step:
            found.append({"name": path.name, "metrics": record.get("metrics", {}), "protocol": record.get("protocol")})
    resolved = Path(ckpt_path).resolve()
    relative = str(resolved.relative_to(run.path)) if run.path in resolved.parents else None
    for path in sorted(run.evaluations.glob("*.json")) if run.evaluations.is_dir() else []:
        record = _read_json(path)
        if not record or record.get("status") != "completed":
            continue
        if record.get("checkpoint") == relative and record.get("global_step") == step:
            found.append({"name": f"study evaluation {path.stem}", "overrides": record.get("overrides"),
                          "metrics": record.get("metrics", {}), "protocol": record.get("protocol")})  # fmt: skip
    return found


def _yaml(value) -> str:
    return yaml.safe_dump(value, sort_keys=False, default_flow_style=False, allow_unicode=True).rstrip()


def _table(values: dict) -> list[str]:
    rows = ["| metric | value |", "| --- | --- |"]
    return rows + [f"| `{k}` | {v:.6g} |" if isinstance(v, float) else f"| `{k}` | {v} |" for k, v in values.items()]


def _usage(config: dict, name: str) -> list[str]:
    """How to load the export and use it for its task (docs/CONTRACT.md, "What a model produces")."""
    task, modality = config["task"]["task"], config["task"]["modality"]
    if task == "unconditional" and modality == "text":
        call, cli = "model.sample(4, length=200, generator=g)", f"gen-lightning sample ckpt={name} n=4 length=200"
    elif task == "unconditional":
        call, cli = "model.sample(16, generator=g)  # (16, C, H, W) in [-1, 1]", f"gen-lightning sample ckpt={name}"
    elif task == "conditional":
        source = '["a source text"]' if config["task"]["source_modality"] == "text" else "images  # (B, C, H, W)"
        call = f"model.generate({source}, generator=g)"
        cli = f"gen-lightning sample ckpt={name} " + (
            'source="a source text"' if config["task"]["source_modality"] == "text" else "input=IMAGE_OR_FOLDER"
        )
    else:
        call = "model.predict(sources)  # (B, num_classes) probabilities"
        cli = f"gen-lightning sample ckpt={name} input=FILE_OR_FOLDER"
    return [
        "```python",
        "import torch",
        "from gen_lightning.export import load_module",
        "",
        f'model = load_module("{name}")  # no pickle; the class is checked against gen-lightning\'s declared ones',
        "g = torch.Generator().manual_seed(0)",
        call,
        "```",
        "",
        f"From the command line: `{cli} seed=0`.",
    ]


def _data_facts(config: dict) -> list[str]:
    lines = []
    for key, value in config["data"].items():
        if isinstance(value, dict):  # a tokenizer: its kind, size and file, not its whole vocabulary
            value = ", ".join(f"{k}={value[k]}" for k in SHOWN_TOKENIZER_KEYS if value.get(k) is not None)
        elif isinstance(value, list) and len(value) > 20:
            value = f"{', '.join(map(str, value[:20]))} ... ({len(value)})"
        lines.append(f"- `{key}`: {value}")
    return lines


def model_card(config: dict, facts: dict, name: str = "DIR") -> str:
    cls = config["class"].rpartition(".")[2]
    family = config["class"].split(".")[1] if config["class"].startswith("gen_lightning.") else config["class"]
    task = describe(tuple(config["task"].values()))
    trained = config["trained"]
    lines = [
        "---",
        "library_name: gen-lightning",
        f"tags: [gen-lightning, {family}, {config['task']['task']}]",
        "---",
        "",
        f"# {cls} ({family})",
        "",
        f"A `{config['class']}` ({task}) exported by gen-lightning {config['gen_lightning_version']} from "
        f"`{trained['checkpoint']}` (step {trained['global_step']}, epoch {trained['epoch']}).",
        "",
        "## Load it",
        "",
        *_usage(config, name),
        "",
        "## Files",
        "",
        "- `model.safetensors`: the module's whole state, weights and buffers (EMA averages where it keeps them)",
        "- `config.json`: the class, its constructor arguments (`hparams`), the data facts (`data`), the weights' "
        "SHA-256",
        *(f"- `{v['file']}`: {TOKENIZER_FILES[k]}" for k, v in config["data"].items() if k in TOKENIZER_FILES and v),
        "",
        "## Model",
        "",
        "Constructor arguments:",
        "",
        "```yaml",
        _yaml(config["hparams"]),
        "```",
        "",
        "Data facts it was built with:",
        "",
        *_data_facts(config),
        "",
        *_training(facts),
        *_metrics(facts),
    ]
    return "\n".join(lines).rstrip() + "\n"


def _training(facts: dict) -> list[str]:
    if "data" not in facts:
        return ["## Training data", "", "Unknown: the checkpoint was not inside a run directory.", ""]
    return [
        "## Training data",
        "",
        f"Run `{facts['run_dir']}`, seed {facts.get('seed')}, status {facts.get('status', 'unknown')}. Its data:",
        "",
        "```yaml",
        _yaml(facts["data"]),
        "```",
        "",
    ]


def _metrics(facts: dict) -> list[str]:
    lines = ["## Metrics", ""]
    if facts.get("metrics"):
        monitor = f" (the run monitored `{facts['monitor']}`)" if facts.get("monitor") else ""
        lines += [f"Validation at this checkpoint's step{monitor}:", "", *_table(facts["metrics"]), ""]
        protocol = facts.get("protocol") or {}
        if protocol:
            ran = protocol.get("global_step", facts["step"])
            at = "" if ran == facts["step"] else f" (it last ran at step {ran}, not at this checkpoint's)"
            intro = f"The card of the run's metric protocol{at}: splits, sample counts, seeds, versions."
            lines += [intro, "", "```yaml", _yaml(protocol), "```", ""]
    for evaluation in facts.get("evaluations", []):
        lines += [f"### {evaluation['name']}", ""]
        if evaluation.get("overrides"):
            lines += [f"Overrides: `{' '.join(evaluation['overrides'])}`", ""]
        lines += [*_table(evaluation["metrics"]), "", "```yaml", _yaml(evaluation.get("protocol")), "```", ""]
    if len(lines) == 2:
        lines += ["None recorded for this checkpoint (no metrics.json row at its step, no evaluation of it).", ""]
    return lines
