"""What the image-to-image models share as LightningModules: the contract's conditional side (docs/CONTRACT.md).

``ImageTranslator`` checks inputs, runs the generator that produces outputs (its EMA copy when enabled) in eval
mode, builds the preview grids (input | output | target rows) and validates on the pixel loss. A subclass sets
``self.generator`` (and ``self.ema``) after ``save_hyperparameters()`` and implements the training step.
Shape facts come from the data module: ``source_channels``/``source_image_size`` (input side) and
``channels``/``image_size`` (output side).

Hyperparameters are listed once, in dataclasses (``nn/hparams.py``): ``Shapes`` for every model, ``Adversarial``
and ``PatchGAN`` for the GANs that share them, then each model's own; a subclass names its groups in ``settings``
and its own defaults in ``defaults``, and takes them all as keyword arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric

from gen_lightning.gan.losses import check_loss
from gen_lightning.img2img.nets import NORMS
from gen_lightning.nn import hparams

PREVIEW_ROWS = 8


@dataclass
class Shapes:
    """Shape facts from the data module (``model_kwargs``): the input side and the output side."""

    channels: int
    image_size: int
    source_channels: int
    source_image_size: int
    num_classes: int = 0  # handed to every model by the data module; no translator uses it


@dataclass
class Adversarial:
    """What the three GAN translators share: network widths, the GAN loss, Adam and an optional EMA."""

    hidden_dim: int = 64  # generator width
    d_hidden_dim: int = 64  # discriminator width
    loss: str = "bce"  # bce | lsgan | hinge | wgan-gp (gan/losses.py)
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    ema_decay: float | None = None  # an EMA of the generator's weights, used for outputs when set
    gradient_clip_val: float = 0.0

    def __post_init__(self) -> None:
        check_loss(self.loss)


@dataclass
class PatchGAN:
    """The PatchGAN discriminator of pix2pix and CycleGAN, and the networks' normalisation."""

    norm: str = "batch"  # batch | instance | none
    d_layers: int = 3  # 3: the 70x70 PatchGAN; 2 for 28x28 images (34x34 patches), 1 for 8x8

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise ValueError(f"model.norm must be one of {NORMS}, got {self.norm!r}")


def convert_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Grey ``(B, 1, H, W)`` repeated to RGB, or RGB reduced to luma (ITU-R 601, as PIL's ``convert("L")``)."""
    if images.shape[1] == channels:
        return images
    if images.shape[1] == 1 and channels == 3:
        return images.repeat(1, 3, 1, 1)
    if images.shape[1] == 3 and channels == 1:
        weights = torch.tensor([0.299, 0.587, 0.114], device=images.device, dtype=images.dtype)
        return (images * weights[None, :, None, None]).sum(1, keepdim=True)
    raise ValueError(f"cannot convert {images.shape[1]}-channel images to {channels} channels")


def display(images: torch.Tensor, channels: int, size: int) -> torch.Tensor:
    """Images shown in one grid with the outputs: nearest-upsampled (pixels stay visible) and same channels."""
    images = convert_channels(images, channels)
    if images.shape[-1] != size:
        images = F.interpolate(images, size=(size, size), mode="nearest")
    return images


class ImageTranslator(L.LightningModule):
    task = "conditional"
    source_modality = "image"
    modality = "image"
    monitor = ("val/loss", "min")
    metric_directions = {"val/loss": "min"}
    sample_modes: tuple[str, ...] = ()
    generate_options: tuple[str, ...] = ()
    settings: tuple[type, ...] = ()  # the hyperparameter dataclasses after ``Shapes``
    defaults: dict = {}  # this model's defaults where they differ from the dataclasses'

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls.__signature__ = hparams.signature(cls.__init__, cls.groups(), cls.defaults)

    @classmethod
    def groups(cls) -> tuple[type, ...]:
        return (Shapes, *cls.settings)

    def __init__(self, settings: dict) -> None:
        """Checks ``settings`` (the keyword arguments) against ``groups()`` and saves them all as hyperparameters."""
        super().__init__()
        groups = hparams.parse(type(self).__name__, settings, self.groups(), self.defaults)
        self.save_hyperparameters({k: v for values in groups for k, v in values.items()})
        self.ema: nn.Module | None = None
        self.val_loss = MeanMetric()

    # ---- the contract's conditional side -------------------------------------------------------------------
    def check_sources(self, sources: torch.Tensor, channels: int | None = None, size: int | None = None):
        """``sources`` on this module's device, or a ValueError saying which shape was expected."""
        channels = channels or self.hparams.source_channels
        size = size or self.hparams.source_image_size
        if not isinstance(sources, torch.Tensor) or sources.dim() != 4:
            got = tuple(sources.shape) if isinstance(sources, torch.Tensor) else type(sources).__name__
            raise ValueError(f"sources must be an image tensor (B, C, H, W) in [-1, 1], got {got}")
        if sources.shape[1:] != (channels, size, size):
            raise ValueError(
                f"{type(self).__name__} takes inputs of shape (B, {channels}, {size}, {size}), got "
                f"{tuple(sources.shape)}: convert the images to {channels} channel(s) at {size}x{size}"
            )
        return sources.to(self.device, torch.float32)

    def sampling_net(self) -> nn.Module:
        return self.ema.shadow if self.ema is not None else self.generator

    def translate(self, sources: torch.Tensor) -> torch.Tensor:
        """The output of the sampling network for checked inputs (no grad, eval mode); override for variants."""
        return self.sampling_net()(sources)

    @torch.no_grad()
    def generate(self, sources: torch.Tensor, generator: torch.Generator | None = None, **options) -> torch.Tensor:
        """Outputs ``(B, C, H, W)`` in [-1, 1] for inputs ``(B, C_src, h, w)`` in [-1, 1] (deterministic)."""
        unknown = set(options) - set(self.generate_options)
        if unknown:
            accepted = ", ".join(self.generate_options) or "none"
            raise ValueError(f"unknown options {sorted(unknown)} for {type(self).__name__}; accepted: {accepted}")
        was_training = self.training
        self.eval()
        try:
            return self.translate_with(sources, **options).clamp(-1, 1)
        finally:
            self.train(was_training)

    def translate_with(self, sources: torch.Tensor, **options) -> torch.Tensor:
        return self.translate(self.check_sources(sources))

    def sample_info(self) -> dict:
        return {"weights": "ema" if self.ema is not None else "raw", "decoding": "deterministic"}

    # ---- validation on the pixel loss ------------------------------------------------------------------------
    def pixel_loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean absolute error per pixel (Isola et al. eq. 3), the default validation loss."""
        return F.l1_loss(output, target)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        output = self.translate(self.check_sources(batch["source"]))
        n = batch["source"].shape[0]
        self.val_loss.update(self.pixel_loss(output, batch["target"]), weight=n)
        self.log("val/loss", self.val_loss, on_epoch=True, batch_size=n, prog_bar=True)

    def require_paired(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if datamodule is not None and getattr(datamodule, "paired", True) is False:
            raise ValueError(
                f"{type(self).__name__} learns from aligned (input, target) pairs, but the data module's two "
                "domains are unpaired (paired = False): use a paired data config, or model=cyclegan"
            )

    # ---- preview ---------------------------------------------------------------------------------------------
    def preview(self, batch: dict, generator: torch.Generator) -> dict:
        """Rows of input | output | target for the first ``PREVIEW_ROWS`` validation pairs."""
        sources, targets = batch["source"][:PREVIEW_ROWS], batch["target"][:PREVIEW_ROWS]
        outputs = self.generate(sources)
        c, s = self.hparams.channels, self.hparams.image_size
        rows = torch.stack([display(sources.to(self.device), c, s), outputs, targets.to(self.device)], dim=1)
        return {"translations": (rows.flatten(0, 1), 3, ("input", "output", "target"))}

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        """Under DDP, every process takes rank 0's buffers (batch-norm statistics, CycleGAN's pools, EMA copies).

        DDP broadcasts buffers only at the start of a training forward, so validation, the metric protocol (which
        calls ``generate`` outside DDP) and the checkpoint (rank 0's) would otherwise see different statistics on
        each process. SyncBatchNorm would share the batch statistics instead, but runs on GPUs only."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            for buffer in self.buffers():
                torch.distributed.broadcast(buffer, src=0)

    # ---- manual optimisation helpers -------------------------------------------------------------------------
    def clip(self, optimizer) -> None:
        if self.hparams.gradient_clip_val:
            self.clip_gradients(
                optimizer, gradient_clip_val=self.hparams.gradient_clip_val, gradient_clip_algorithm="norm"
            )

    def optimizer_step_on(self, optimizer, loss_fn) -> dict[str, torch.Tensor]:
        """Compute ``loss_fn() -> (loss, logs)`` with only ``optimizer``'s parameters trainable, then backward,
        clip and step; returns the detached logs.

        Under DDP nothing is toggled and the backward adds 0 * (sum of every parameter): each backward reaches all
        parameters, so DDP runs without its per-step search for unused ones (conf/trainer/ddp.yaml: ``ddp``). The
        other networks' gradients are cleared by their own optimizer's ``zero_grad`` before their step."""
        if self._trainer is not None and self.trainer.world_size > 1:
            return self._step_on(optimizer, loss_fn, reach_all=True)
        with self.toggled_optimizer(optimizer):
            return self._step_on(optimizer, loss_fn, reach_all=False)

    def _step_on(self, optimizer, loss_fn, reach_all: bool) -> dict[str, torch.Tensor]:
        loss, logs = loss_fn()
        optimizer.zero_grad()
        untouched = 0.0 * sum(p.sum() for p in self.parameters() if p.requires_grad) if reach_all else 0.0
        self.manual_backward(loss + untouched)
        self.clip(optimizer)
        optimizer.step()
        return {k: v.detach() for k, v in logs.items()}
