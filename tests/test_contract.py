"""The family contract (docs/CONTRACT.md), run over every model config in conf/model/.

Each model is built from its config with the data module's shape facts, trained a few steps, validated, and must
then: log its monitored metric, sample with the contract's shapes from a fixed generator reproducibly, give
preview media, and round-trip through a checkpoint. Sizes are shrunk by each model's tiny preset
(tests/presets/<model>.yaml) so the suite stays fast.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from conftest import PRESETS, tiny_overrides
from hydra.utils import get_class, instantiate

from gen_lightning.callbacks import ExactResume
from gen_lightning.callbacks.directions import metric_directions
from gen_lightning.config import compose, config_dir
from gen_lightning.nn.image_model import LABEL_RULES, ImageModel
from gen_lightning.run import checkpoint as ckpt_io
from gen_lightning.tasks import protocols_for, task_of

MODELS = sorted(p.stem for p in (config_dir() / "model").glob("*.yaml"))
# The conditional family of the tests (tests/toy_family), plugged in by search path alone.
TOY = {
    "toy_unmirror": [f"hydra.searchpath=[file://{Path(__file__).parent / 'toy_family' / 'conf'}]", "data=toy_mirrored"]
}


def build(name: str, tmp_path, *extra: str):
    cfg = compose(tiny_overrides(tmp_path, *TOY.get(name, []), *extra, model=name))
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


def draw(module, n, dm=None, seed=0):
    """What the model produces for its task: samples, outputs for n validation sources, or class probabilities."""
    g = torch.Generator().manual_seed(seed)
    task = task_of(module)[0]
    if task == "unconditional":
        return module.sample(n, length=12, generator=g) if module.modality == "text" else module.sample(n, generator=g)
    sources = next(iter(dm.evaluation_loader("val", n, n)))["source"]
    if task == "conditional":
        return module.generate(sources, generator=g)
    return module.predict(sources)


def check_outputs(module, dm, a, b, n: int) -> None:
    """The contract's shapes and reproducibility of ``draw``'s results (docs/CONTRACT.md)."""
    if module.modality == "image":
        c, s = dm.model_kwargs()["channels"], dm.model_kwargs()["image_size"]
        assert a.shape == (n, c, s, s) and a.min() >= -1 and a.max() <= 1
        assert torch.equal(a, b), "the same generator seed must give the same images"
    elif module.modality == "text":
        assert len(a) == n and all(isinstance(x, str) for x in a) and a == b
    else:
        assert task_of(module)[0] == "prediction" and a.shape == (n, len(module.hparams.class_names))
        assert torch.allclose(a.sum(-1), torch.ones(n), atol=1e-5) and torch.equal(a, b)


@pytest.mark.parametrize("name", [*MODELS, *TOY])
def test_family_contract(name, tmp_path):
    cfg, dm, module = build(name, tmp_path)
    task = task_of(module)
    assert task[:2] in (("unconditional", None), ("conditional", "image"), ("conditional", "text"),
        ("prediction", "image"), ("prediction", "text"))  # fmt: skip
    assert task[2] in ("image", "text", "label")
    assert task_of(dm) == task, "the model and its data config must declare the same task"
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

    module.eval()
    a, b = draw(module, 4, dm), draw(module, 4, dm)
    check_outputs(module, dm, a, b, 4)
    assert isinstance(module.sample_info(), dict)

    batch = next(iter(dm.val_dataloader()))
    media = module.preview(batch, torch.Generator().manual_seed(1))
    assert media and all(isinstance(v, torch.Tensor | list | tuple) for v in media.values())
    for value in media.values():  # (images, columns) grids and tables of rows are the other two shapes
        if isinstance(value, tuple):
            assert isinstance(value[0], torch.Tensor) and isinstance(value[1], int)
        elif isinstance(value, list) and value and not isinstance(value[0], str):
            assert all(isinstance(row, dict) for row in value)

    path = tmp_path / "model.ckpt"
    t.save_checkpoint(path)
    restored = ckpt_io.load_module(path)
    assert type(restored) is type(module)
    again, before = draw(restored, 4, dm), draw(module, 4, dm)
    if isinstance(again, torch.Tensor):
        assert torch.allclose(again, before, atol=1e-5)
    else:
        assert again == before


def test_every_model_config_has_a_tiny_preset():
    presets, models = {p.stem for p in PRESETS.glob("*.yaml")}, {*MODELS, *TOY}
    missing, stale = sorted(models - presets), sorted(presets - models)
    assert not missing, f"add tests/presets/<model>.yaml for {missing}: a YAML list of overrides ([] keeps the sizes)"
    assert not stale, f"tests/presets/ holds presets of no model config: {stale}"


@pytest.mark.parametrize("name", [*MODELS, *TOY])
def test_metric_directions_rank_the_monitor_and_agree_with_the_protocols(name):
    cfg = compose([f"model={name}", *TOY.get(name, [])])
    cls = get_class(cfg.model._target_)
    monitor, mode = cls.monitor
    assert cls.metric_directions.get(monitor) == mode, f"{name}: metric_directions must rank its monitor {monitor}"
    assert all(k.startswith("val/") for k in cls.metric_directions), cls.metric_directions
    protocols = [instantiate(compose([f"model={name}", *TOY.get(name, []), f"metrics={p}"]).metrics)
        for p in protocols_for(task_of(cls))]  # fmt: skip
    metric_directions(cls, protocols)  # raises if a protocol ranks one of the model's metrics the other way
    if isinstance(cls, type) and issubclass(cls, ImageModel):
        assert cls.default_labels in LABEL_RULES
