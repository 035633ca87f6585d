"""``gen-lightning sample ckpt=PATH [n=64] [out=FILE] [mode=...] [input=PATH | source="..."] [option=value ...]``.

``ckpt`` is a checkpoint, whose outputs go to its run directory by default, or an export folder
(``gen-lightning export``), whose outputs go to the current directory by default (an export stays as written).

What it writes follows the model's task (docs/CONTRACT.md):
- unconditional image models: a PNG grid of ``n`` samples; a family's extra modes (VAE ``reconstruct``/
  ``interpolate``/``variations``, diffusion ``inpaint``/``edit``) build their grid from ``n`` real validation images
  of the run's data (``labels=`` replaces their classes, e.g. the class an edit steers to), or
  from the images of ``input=PATH``;
- unconditional text models: ``n`` samples printed and saved;
- conditional models: the outputs of ``input=PATH`` (an image, a folder of images, a text file with one source a
  line) or of ``source="..."``: a grid of input | output rows for images (and, for a folder, each output as an image
  of the same name), one output a line for texts;
- prediction models: the class and its probability for each input, printed and saved as TSV.
Every other ``key=value`` goes to the model's ``sample``/``render``/``generate``/``predict`` (e.g. ``steps=50
sampler=ddim``, ``labels=[3,3,7]``, ``prompt="ROMEO:" length=300 temperature=0.8``, ``beam=5``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.utils import save_image

from gen_lightning.callbacks.samples import image_grid, mode_titles
from gen_lightning.commands.inputs import model_sources, read_images
from gen_lightning.commands.outputs import text_writer
from gen_lightning.export import is_export
from gen_lightning.export import load_module as load_export
from gen_lightning.run.checkpoint import load_module
from gen_lightning.run.prepare import SavedRun
from gen_lightning.run_dir import RunDir
from gen_lightning.tasks import task_of

OUTPUT_TITLES = ("input", "output")  # the grid of a conditional model's outputs: input | output pairs


def check_options(method, options: dict, fixed: tuple[str, ...] = ()) -> None:
    """A ``ValueError`` naming the accepted options when ``method`` (a model's sample/render/generate/predict)
    does not take one of ``options``; ``fixed`` are the arguments the command passes itself."""
    import inspect

    params = inspect.signature(method).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return  # the model checks its own options
    accepted = [p for p in params if p not in ("self", "n", "generator", "sources", "mode", "images", *fixed)]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        owner = getattr(method, "__qualname__", "the model")
        raise ValueError(f"{owner} does not take {', '.join(unknown)}; it takes {', '.join(accepted) or 'no options'}")


def real_batch(ckpt: Path, n: int, split: str):
    """``n`` real images of ``split`` and their classes, from the data of the run that wrote ``ckpt``."""
    if is_export(ckpt):
        raise ValueError(f"'{ckpt}' is an export, which holds no data: give it images with input=IMAGE_OR_FOLDER")
    return next(iter(SavedRun.of_checkpoint(ckpt).datamodule().reference_loader(split, n)))


def sample_command(
    ckpt: str,
    n: int | None = None,
    out: str | None = None,
    mode: str = "sample",
    seed: int = 0,
    split: str = "val",
    device: str = "cpu",
    input: str | None = None,  # noqa: A002 - the command's own word
    source: str | None = None,
    resize: bool = False,
    encoding: str = "utf-8",
    batch_size: int = 64,
    **options,
) -> Path:
    explicit_n, n = n, 64 if n is None else n  # with input=: n given = outputs per input image
    for name, value in (("n", n), ("batch_size", batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    path = Path(ckpt)
    module = load_export(path, map_location=device) if is_export(path) else load_module(path, map_location=device)
    generator = torch.Generator(device=device).manual_seed(seed)
    task, _, modality = task_of(module)
    if task != "unconditional":
        if mode != "sample":
            raise ValueError(f"{type(module).__name__} has only mode=sample (its outputs for input= or source=)")
        sources, names = model_sources(module, input, source, resize, encoding)
        if task == "conditional":
            return write_outputs(module, sources, names, input, out, generator, batch_size, options)
        return write_predictions(module, sources, names, input, out, batch_size, options)
    if source is not None:
        raise ValueError(f"{type(module).__name__} generates from nothing: source= is for conditional models")
    if modality == "text":
        if mode != "sample" or input is not None:
            raise ValueError("text models take mode=sample and a prompt=..., not input= or another mode")
        if not isinstance(options.get("length"), int) or options["length"] < 1:
            raise ValueError("text models need length=N, the number of tokens to generate (e.g. length=300)")
        return write_texts(module, n, out, output_folder(path), generator, options)
    if mode == "sample":
        if input is not None:
            raise ValueError(f"mode=sample draws from nothing; input= is for {getattr(module, 'sample_modes', ())}")
        images, nrow = sample_images(module, n, generator, batch_size, options), None
    elif mode in getattr(module, "sample_modes", ()):
        if input is not None:
            images, _ = read_images(input, module.hparams.channels, module.hparams.image_size, resize)
            labels = torch.full((len(images),), -1, dtype=torch.long)
        else:
            images, labels = real_batch(path, n, split)
        if "labels" in options:  # the user's classes (e.g. the class an edit steers to) replace the images' own
            labels = options.pop("labels")
        check_options(module.render, options, ("labels",))
        if input is not None and explicit_n is not None:
            options["n"] = n  # outputs per input image (VAE variations, DDPM edits)
        images, nrow = module.render(mode, images, labels, generator=generator, **options)
    else:
        modes = ", ".join(("sample", *getattr(module, "sample_modes", ())))
        raise ValueError(f"unknown mode '{mode}' for {type(module).__name__}; choose from {modes}")
    target = Path(out) if out else output_folder(path).sampled(f"{mode}.png")
    target.parent.mkdir(parents=True, exist_ok=True)
    save_image(image_grid(images, nrow, mode_titles(mode, nrow or 0)), target)
    print(f"wrote {target} ({len(images)} images)")
    return target


def output_folder(ckpt: Path) -> RunDir:
    """Where outputs go without ``out=``: the checkpoint's run directory; for an export, the current directory."""
    return RunDir(Path.cwd()) if is_export(ckpt) else RunDir.of_checkpoint(ckpt)


def sample_images(module, n: int, generator: torch.Generator, batch_size: int, options: dict) -> torch.Tensor:
    """``n`` samples drawn ``batch_size`` at a time (bounded memory), kept as uint8, with a progress line."""
    check_options(module.sample, options)
    chunks = []
    for start in range(0, n, batch_size):
        images = module.sample(min(batch_size, n - start), generator=generator, **options)
        chunks.append(((images.float().cpu() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8))
        if n > batch_size:
            print(f"\rsampled {min(n, start + batch_size)}/{n}", end="", flush=True)
    if n > batch_size:
        print()
    return torch.cat(chunks).float().div(127.5).sub(1.0)


def write_texts(module, n: int, out: str | None, run_dir: RunDir, generator: torch.Generator, options: dict) -> Path:
    """``n`` samples printed and written by the writer of ``format=`` (commands/outputs.py; default txt)."""
    writer, suffix = text_writer(options.pop("format", "txt"))
    if "prompt" in options:  # a shell passes "\n" as two characters: M:6/8\nK:D is meant as two lines
        options["prompt"] = options["prompt"].replace("\\n", "\n").replace("\\t", "\t")
    texts = module.sample(n, generator=generator, **options)
    for i, text in enumerate(texts):
        print(f"--- sample {i} ---\n{text}")
    written = writer(texts, Path(out) if out else run_dir.sampled(f"samples{suffix}"))
    print(f"wrote {', '.join(map(str, written[:4]))}{' ...' if len(written) > 4 else ''}")
    return written[0]


def _batches(sources, batch_size: int):
    for start in range(0, len(sources), batch_size):
        yield sources[start : start + batch_size]


def _default_out(input: str | None, suffix: str) -> Path | None:  # noqa: A002
    return None if input is None else Path(input).with_name(Path(input).stem + suffix)


def write_outputs(module, sources, names, input, out, generator, batch_size: int, options: dict) -> Path | None:  # noqa: A002
    """Outputs of a conditional model: a grid of input | output rows (images) or one output a line (texts)."""
    check_options(module.generate, options)
    outputs = []
    for chunk in _batches(sources, batch_size):
        result = module.generate(chunk, generator=generator, **options)
        outputs += list(result) if isinstance(result, list) else [result]
    if isinstance(sources, list):  # texts
        for name, text in zip(names, outputs):
            print(text if len(names) == 1 else f"{name}\t{text}")
        target = Path(out) if out else _default_out(input, ".out.txt")
        if target is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("".join(line.replace("\n", " ") + "\n" for line in outputs), encoding="utf-8")
            print(f"wrote {target} ({len(outputs)} lines)")
        return target
    images = torch.cat(outputs).cpu()
    target = Path(out) if out else _default_out(input, ".out.png")
    shown = torch.nn.functional.interpolate(sources, size=images.shape[-2:], mode="nearest")  # inputs at output size
    if shown.shape[1] != images.shape[1]:
        shown = shown.expand(-1, images.shape[1], -1, -1)
    target.parent.mkdir(parents=True, exist_ok=True)
    pairs = torch.stack([shown, images], 1).flatten(0, 1)  # (2N, C, H, W): input, output, ...
    save_image(image_grid(pairs, 2 * min(4, len(images)), OUTPUT_TITLES), target)
    if Path(input).is_dir():
        folder = target.with_suffix("")
        folder.mkdir(parents=True, exist_ok=True)
        for name, image in zip(names, images):
            save_image(((image + 1) / 2).clamp(0, 1), folder / Path(name).with_suffix(".png").name)
        print(f"wrote {len(images)} outputs to {folder}")
    print(f"wrote {target} (input | output, {len(images)} images)")
    return target


def write_predictions(module, sources, names, input, out, batch_size: int, options: dict) -> Path | None:  # noqa: A002
    """The most probable class of each input and its probability, printed and written as TSV."""
    classes = list(module.hparams.class_names)
    check_options(module.predict, options)
    rows = []
    for chunk in _batches(sources, batch_size):
        probs = module.predict(chunk, **options)
        best = probs.max(-1)
        rows += [(classes[i], float(p)) for p, i in zip(best.values.tolist(), best.indices.tolist())]
    texts = sources if isinstance(sources, list) else names
    for (label, prob), text in zip(rows, texts):
        print(f"{label}\t{prob:.3f}\t{text}")
    target = Path(out) if out else _default_out(input, ".pred.tsv")
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        lines = ["label\tprobability\tinput"] + [f"{lbl}\t{p:.6f}\t{t}" for (lbl, p), t in zip(rows, texts)]
        target.write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"wrote {target}")
    return target
