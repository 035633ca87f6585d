"""What the image families share as a LightningModule: noise, eval-mode sampling, class labels, the sampling network.

The VAE (``vae/module.py``), the GAN (``gan/module.py``) and DDPM (``diffusion/module.py``) subclass
``ImageModel`` directly (LightningModule -> ImageModel -> family). A subclass
- names its image-making network in ``sampling_network`` (the VAE's ``decoder``, the GAN's ``generator``, DDPM's
  ``net``) and, when it keeps a moving average of it, assigns ``self.ema = EMA(...)`` (``nn/ema.py``), so the
  checkpoint keys stay ``ema.*``;
- calls ``self.condition_on_classes(conditional, num_classes)`` when it can sample class-conditionally.

It gets ``noise`` (drawn on the generator's device, so a CPU generator gives the same images on any accelerator),
``sample_labels`` (defaults, validation and error messages of the ``labels`` option), ``sampling_net`` (the average
when there is one), ``update_ema`` and the shared part of ``sample_info``. The families sample under
``nn.eval_mode.evaluating`` (eval mode, no gradients, the previous mode restored).
"""

from __future__ import annotations

import lightning as L
import torch
from torch import nn

from gen_lightning.nn.ema import EMA

LABEL_RULES = ("uniform", "in_turn")


class ImageModel(L.LightningModule):
    task = "unconditional"
    source_modality: str | None = None
    modality = "image"
    sample_modes: tuple[str, ...] = ()
    # "min" or "max" for each val/ score the family logs (docs/CONTRACT.md); diagnostics are left out.
    metric_directions: dict[str, str] = {}
    sampling_network: str  # attribute name of the network that makes images
    # Classes of a class-conditional sample drawn without ``labels``: "uniform" from the generator, or "in_turn"
    # (0, 1, ..., K - 1, 0, ...: equal counts per class, no randomness).
    default_labels = "uniform"

    def __init__(self) -> None:
        super().__init__()
        self.ema: EMA | None = None  # replaced by the subclass's average, registered where it assigns it
        self.num_conditional_classes = 0

    def condition_on_classes(self, conditional: bool, num_classes: int) -> None:
        """Sample class-conditionally on the data module's ``num_classes`` classes when ``conditional``."""
        if conditional and num_classes <= 0:
            raise ValueError(
                f"conditional: true needs labelled data, but the data module reports num_classes={num_classes}; "
                "set model.conditional=false or use a labelled data set"
            )
        self.num_conditional_classes = num_classes if conditional else 0

    # ---- randomness ----------------------------------------------------------------------------------------

    def noise(self, shape: tuple[int, ...], generator: torch.Generator | None = None) -> torch.Tensor:
        """Standard normal noise of ``shape`` on the module's device; drawn on the generator's own device (a CPU
        generator gives the same noise on every accelerator), or from torch's global RNG without one."""
        if generator is None:
            return torch.randn(shape, device=self.device)
        return torch.randn(shape, generator=generator, device=generator.device).to(self.device)

    # ---- labels of class-conditional sampling --------------------------------------------------------------

    def sample_labels(self, n: int, labels=None, generator: torch.Generator | None = None) -> torch.Tensor | None:
        """The ``(n,)`` classes of ``n`` conditional samples, or None for an unconditional model.

        ``labels``: None (``default_labels``), one class for all, or ``n`` classes (a sequence or tensor).
        """
        k = self.num_conditional_classes
        if k == 0:
            if labels is not None:
                raise ValueError(
                    f"labels were given, but this {type(self).__name__} is unconditional (conditional: false)"
                )
            return None
        if labels is None:
            if self.default_labels == "in_turn":
                return torch.arange(n, device=self.device) % k
            device = generator.device if generator is not None else self.device  # drawn as ``noise``
            return torch.randint(k, (n,), generator=generator, device=device).to(self.device)
        y = torch.as_tensor(labels, dtype=torch.long).to(self.device)
        y = y.expand(n) if y.dim() == 0 else y
        if y.shape != (n,):
            raise ValueError(f"labels must be one class or {n} classes, got shape {tuple(y.shape)}")
        if int(y.min()) < 0 or int(y.max()) >= k:
            raise ValueError(f"labels must lie in [0, {k - 1}], got values from {int(y.min())} to {int(y.max())}")
        return y

    # ---- the network that samples --------------------------------------------------------------------------

    def sampling_net(self) -> nn.Module:
        """The moving average of the image-making network when there is one, else the live network."""
        return self.ema.shadow if self.ema is not None else getattr(self, self.sampling_network)

    def update_ema(self) -> None:
        """One step of the moving average towards the live network (no-op without an average)."""
        if self.ema is not None:
            self.ema.update(getattr(self, self.sampling_network))

    def sample_info(self) -> dict:
        """What every image family's samples depend on: the weights, and how classes were chosen."""
        info = {"weights": "ema" if self.ema is not None else "raw"}
        if self.num_conditional_classes:
            info["labels"] = self.default_labels
        return info
