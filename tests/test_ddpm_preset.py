"""The DDPM size presets set every argument they use (gen_lightning/diffusion/module.py SIZE_PRESETS): the default
config on the digits builds without a warning about its own settings."""

from __future__ import annotations

import warnings

from hydra.utils import instantiate
from omegaconf import OmegaConf

from gen_lightning.config import config_dir
from gen_lightning.diffusion.nets import Attention


def build(image_size: int, **overrides):
    node = OmegaConf.load(config_dir() / "model" / "ddpm.yaml")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning about the config's own values fails the test
        return instantiate(node, channels=1, image_size=image_size, **overrides)


def test_the_default_ddpm_fits_the_image_size_it_is_given():
    digits = build(8)  # the 8x8 digits: levels 8 and 4, attention in the middle block only
    assert digits.hparams.attention_resolutions == []
    assert sum(isinstance(m, Attention) for m in digits.net.modules()) == 1
    mnist = build(28)  # 28x28: levels 28, 14, 7; attention at 14 on the way down and up, and in the middle
    assert list(mnist.hparams.attention_resolutions) == [16, 14]
    assert sum(isinstance(m, Attention) for m in mnist.net.modules()) > 1
    given = build(8, attention_resolutions=[4])  # a value given wins over the preset
    assert given.hparams.attention_resolutions == [4]
    assert sum(isinstance(m, Attention) for m in given.net.modules()) > 1
