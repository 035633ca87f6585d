"""The family contract (docs/CONTRACT.md), run over every model config in conf/model/.

Each model is built from its config with the data module's shape facts, trained a few steps, validated, and must
then: log its monitored metric, sample with the contract's shapes from a fixed generator reproducibly, give
preview media, and round-trip through a checkpoint. Sizes are shrunk by each model's tiny preset
(tests/presets/<model>.yaml) so the suite stays fast.
"""

from __future__ import annotations

import lightning as L
import pytest
import torch
from conftest import PRESETS, tiny_overrides
from hydra.utils import get_class, instantiate

from gen_lightning import checkpoint as ckpt_io
from gen_lightning.callbacks import ExactResume
from gen_lightning.callbacks.summary import metric_directions
from gen_lightning.config import compose, config_dir
from gen_lightning.metrics.callback import ImageMetrics
from gen_lightning.nn.image_model import LABEL_RULES

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


def draw(module, n, seed=0):
    g = torch.Generator().manual_seed(seed)
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

    a, b = draw(module, 4), draw(module, 4)
    if module.modality == "image":
        c, s = dm.model_kwargs()["channels"], dm.model_kwargs()["image_size"]
        assert a.shape == (4, c, s, s) and a.min() >= -1 and a.max() <= 1
        assert torch.equal(a, b), "the same generator seed must give the same samples"
        assert isinstance(module.sample_info(), dict)
    else:
        assert len(a) == 4 and all(isinstance(x, str) for x in a) and a == b

    batch = next(iter(dm.val_dataloader()))
    media = module.preview(batch, torch.Generator().manual_seed(1))
    assert media and all(isinstance(v, torch.Tensor | list) for v in media.values())

    path = tmp_path / "model.ckpt"
    t.save_checkpoint(path)
    restored = ckpt_io.load_module(path)
    assert type(restored) is type(module)
    module.eval()
    again = draw(restored, 4)
    if module.modality == "image":
        assert torch.allclose(again, draw(module, 4), atol=1e-5)
    else:
        assert again == draw(module, 4)


def test_every_model_config_has_a_tiny_preset():
    presets = {p.stem for p in PRESETS.glob("*.yaml")}
    missing, stale = sorted(set(MODELS) - presets), sorted(presets - set(MODELS))
    assert not missing, f"add tests/presets/<model>.yaml for {missing}: a YAML list of overrides ([] keeps the sizes)"
    assert not stale, f"tests/presets/ holds presets of no conf/model/ config: {stale}"


@pytest.mark.parametrize("name", MODELS)
def test_class_attributes_declare_task_and_metric_directions(name):
    cls = get_class(compose([f"model={name}"]).model._target_)
    assert cls.task in ("unconditional", "conditional", "prediction")
    monitor, mode = cls.monitor
    assert cls.metric_directions.get(monitor) == mode, f"{name}: metric_directions must rank its monitor {monitor}"
    assert all(k.startswith("val/") for k in cls.metric_directions), cls.metric_directions
    metric_directions(cls, [ImageMetrics])  # raises if a metric callback ranks one of its names the other way
    if cls.modality == "image" and cls.task == "unconditional":
        assert cls.default_labels in LABEL_RULES
