"""``gen-lightning sample ckpt=PATH [n=64] [out=FILE] [mode=...] [seed=0] [option=value ...]``.

Images: a PNG grid of ``n`` samples, or for a family's extra modes (VAE ``reconstruct``/``interpolate``,
diffusion ``inpaint``) a grid built from ``n`` real validation images of the run's own data. Text: ``n``
samples printed and saved. Every other ``key=value`` goes to the model's ``sample``/``render`` (e.g.
``steps=50 sampler=ddim``, ``labels=[3,3,7]``, ``prompt="ROMEO:" length=300 temperature=0.8 top_k=40``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torchvision.utils import save_image

from gen_lightning.callbacks.samples import image_grid
from gen_lightning.checkpoint import load_module
from gen_lightning.train import CONFIG_FILE


def run_datamodule(ckpt: Path):
    """The data module of the run that wrote ``ckpt`` (RUN_DIR/checkpoints/x.ckpt -> RUN_DIR/config.yaml)."""
    cfg_path = ckpt.resolve().parent.parent / CONFIG_FILE
    if not cfg_path.is_file():
        raise FileNotFoundError(f"mode needs real images, but the run config '{cfg_path}' is missing")
    dm = instantiate(OmegaConf.load(cfg_path).data)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def real_batch(ckpt: Path, n: int, split: str):
    dm = run_datamodule(ckpt)
    return next(iter(dm.reference_loader(split, n)))


def sample_command(
    ckpt: str,
    n: int = 64,
    out: str | None = None,
    mode: str = "sample",
    seed: int = 0,
    split: str = "val",
    device: str = "cpu",
    **options,
) -> Path:
    path = Path(ckpt)
    module = load_module(path, map_location=device)
    generator = torch.Generator(device=device).manual_seed(seed)
    if module.modality == "text":
        if mode != "sample":
            raise ValueError(f"text models have only mode=sample, got mode={mode}")
        texts = module.sample(n, generator=generator, **options)
        target = Path(out) if out else path.parent.parent / "samples.txt"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("\n\n---\n\n".join(texts), encoding="utf-8")
        for i, text in enumerate(texts):
            print(f"--- sample {i} ---\n{text}")
        print(f"wrote {target}")
        return target
    if mode == "sample":
        images, nrow = module.sample(n, generator=generator, **options), None
    elif mode in getattr(module, "sample_modes", ()):
        images, labels = real_batch(path, n, split)
        images, nrow = module.render(mode, images, labels, **options)
    else:
        modes = ", ".join(("sample", *getattr(module, "sample_modes", ())))
        raise ValueError(f"unknown mode '{mode}' for {type(module).__name__}; choose from {modes}")
    target = Path(out) if out else path.parent.parent / f"{mode}.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    save_image(image_grid(images, nrow), target)
    print(f"wrote {target} ({len(images)} images)")
    return target
