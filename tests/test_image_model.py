"""The image families' base (gen_lightning/nn/image_model.py): noise from a generator, labels of class-conditional
sampling, the network that samples. The families' own tests (test_vae.py, test_gan.py, test_diffusion.py) check
the same behaviour through their samples."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gen_lightning.nn.ema import EMA
from gen_lightning.nn.image_model import ImageModel


class Linear(ImageModel):
    """The smallest image family: a linear map from 3 latents to a 1x2x2 image."""

    sampling_network = "net"

    def __init__(self, num_classes: int = 0, conditional: bool = False, ema_decay: float | None = None) -> None:
        super().__init__()
        self.condition_on_classes(conditional, num_classes)
        self.net = nn.Linear(3, 4)
        self.ema = EMA(self.net, ema_decay) if ema_decay else None


def test_noise_comes_from_the_generator_or_the_global_rng():
    model = Linear()
    a = model.noise((2, 3), torch.Generator().manual_seed(1))
    assert torch.equal(a, torch.randn(2, 3, generator=torch.Generator().manual_seed(1)))
    torch.manual_seed(4)
    b = model.noise((2, 3))
    torch.manual_seed(4)
    assert torch.equal(b, torch.randn(2, 3))


def test_default_labels_uniform_from_the_generator_or_in_turn():
    model = Linear(num_classes=10, conditional=True)
    y = model.sample_labels(500, generator=torch.Generator().manual_seed(0))
    assert torch.equal(y, model.sample_labels(500, generator=torch.Generator().manual_seed(0)))
    assert set(y.tolist()) == set(range(10))  # every class appears among 500 uniform draws
    model.default_labels = "in_turn"
    assert model.sample_labels(12).tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    assert model.sample_info() == {"weights": "raw", "labels": "in_turn"}


def test_given_labels_are_checked_with_a_message():
    model = Linear(num_classes=10, conditional=True)
    assert model.sample_labels(3, 7).tolist() == [7, 7, 7]
    assert model.sample_labels(2, [1, 9]).tolist() == [1, 9]
    with pytest.raises(ValueError, match="one class or 4 classes, got shape"):
        model.sample_labels(4, [1, 2])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 9\], got values from 3 to 10"):
        model.sample_labels(2, torch.tensor([3, 10]))
    with pytest.raises(ValueError, match="this Linear is unconditional"):
        Linear(num_classes=10).sample_labels(2, 1)
    with pytest.raises(ValueError, match="num_classes=0; set model.conditional=false"):
        Linear(num_classes=0, conditional=True)
    assert Linear(num_classes=10).sample_labels(2) is None


def test_the_average_samples_when_there_is_one():
    raw, averaged = Linear(), Linear(ema_decay=0.5)
    assert raw.sampling_net() is raw.net and raw.sample_info() == {"weights": "raw"}
    assert averaged.sampling_net() is averaged.ema.shadow and averaged.sample_info() == {"weights": "ema"}
    assert [k for k in averaged.state_dict() if k.startswith("ema.")]  # checkpoint keys ema.*
    with torch.no_grad():
        averaged.net.weight.add_(1.0)
    before = averaged.ema.shadow.weight.clone()
    averaged.update_ema()
    assert not torch.equal(averaged.ema.shadow.weight, before)
    raw.update_ema()  # no average: nothing to do
