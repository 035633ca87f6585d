"""The family contract (docs/CONTRACT.md), run over every model config in conf/model/.

Each model is built from its config with the data module's shape facts, trained a few steps, validated, and must
then: log its monitored metric, sample with the contract's shapes from a fixed generator reproducibly, give
preview media, and round-trip through a checkpoint. Sizes are shrunk per model so the suite stays fast.
"""

from __future__ import annotations

import lightning as L
import pytest
import torch
from conftest import tiny_overrides
from hydra.utils import instantiate

from gen_lightning import checkpoint as ckpt_io
from gen_lightning.callbacks import ExactResume
from gen_lightning.config import compose, config_dir

MODELS = sorted(p.stem for p in (config_dir() / "model").glob("*.yaml"))


def build(name: str, tmp_path, *extra: str):
    cfg = compose(tiny_overrides(tmp_path, *extra, model=name))
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup("fit")
    torch.manual_seed(0)
    return cfg, dm, instantiate(cfg.model, **dm.model_kwargs(), _convert_="all")


def trainer(tmp_path, steps: int = 4) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu",
        max_steps=steps,
        limit_val_batches=2,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        callbacks=[ExactResume()],
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
    )


def draw(module, n, seed=0, dm=None):
    g = torch.Generator().manual_seed(seed)
    if getattr(module, "task", "unconditional") == "conditional":  # outputs for the first n validation sources
        return module.generate(next(iter(dm.evaluation_loader("val", n, n)))["source"], generator=g)
    if module.modality == "text":
        return module.sample(n, length=12, generator=g)
    return module.sample(n, generator=g)


@pytest.mark.parametrize("name", MODELS)
def test_family_contract(name, tmp_path):
    cfg, dm, module = build(name, tmp_path)
    assert module.modality in ("image", "text")
    assert set(module.hparams) >= set(dm.model_kwargs()), "data shape facts must be saved as hyperparameters"
    for value in module.hparams.values():
        assert not isinstance(value, torch.nn.Module)

    t = trainer(tmp_path)
    t.fit(module, datamodule=dm)
    assert any(k.startswith("train/") for k in t.callback_metrics)
    t.validate(module, datamodule=dm, verbose=False)
    monitor, mode = module.monitor
    assert mode in ("min", "max")
    assert monitor in t.callback_metrics, f"{name} does not log its monitored metric {monitor}"

    a, b = draw(module, 4, dm=dm), draw(module, 4, dm=dm)
    if module.modality == "image":
        c, s = dm.model_kwargs()["channels"], dm.model_kwargs()["image_size"]
        assert a.shape == (4, c, s, s) and a.min() >= -1 and a.max() <= 1
        assert torch.equal(a, b), "the same generator seed must give the same samples"
        assert isinstance(module.sample_info(), dict)
    else:
        assert len(a) == 4 and all(isinstance(x, str) for x in a) and a == b

    batch = next(iter(dm.val_dataloader()))
    media = module.preview(batch, torch.Generator().manual_seed(1))
    assert media and all(isinstance(v, torch.Tensor | list | tuple) for v in media.values())

    path = tmp_path / "model.ckpt"
    t.save_checkpoint(path)
    restored = ckpt_io.load_module(path)
    assert type(restored) is type(module)
    module.eval()
    again = draw(restored, 4, dm=dm)
    if module.modality == "image":
        assert torch.allclose(again, draw(module, 4, dm=dm), atol=1e-5)
    else:
        assert again == draw(module, 4, dm=dm)
