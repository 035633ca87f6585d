"""CycleGAN: unpaired image-to-image translation (Zhu et al. 2017, "Unpaired Image-to-Image Translation using
Cycle-Consistent Adversarial Networks").

Two generators ``G: A -> B`` and ``F: B -> A`` and two PatchGAN discriminators ``D_B``, ``D_A``, trained on
``L_GAN(G, D_B) + L_GAN(F, D_A) + lambda L_cyc(G, F)`` (eq. 3) with
- least-squares GAN losses (section 4: Mao et al. 2017), the discriminator objective halved;
- the cycle loss ``E ||F(G(a)) - a||_1 + E ||G(F(b)) - b||_1`` (eq. 2), lambda = ``cycle_weight`` = 10;
- the identity loss ``E ||G(b) - b||_1 + E ||F(a) - a||_1`` (section 5.2, Taigman et al. 2017) weighted
  ``identity_weight * cycle_weight`` (0.5 * 10, as the authors' code); it needs equal channels in A and B;
- the discriminators updated from a history of ``pool_size`` = 50 generated images (Shrivastava et al. 2017):
  once the pool is full each new fake is, with probability 1/2, swapped for a random stored one. The pools
  are module buffers, filled with draws from torch's global RNG, so they resume exactly;
- Adam 2e-4, betas (0.5, 0.999); the learning rate constant for ``lr_constant_steps`` batches, then decayed
  linearly to zero over ``lr_decay_steps`` (the paper: 100 epochs, then 100 more decaying).

Steps: manual optimisation, per batch one step of both generators (one Adam), then one of both discriminators
(another Adam) on the same fakes; ``global_step`` advances by 2 per batch. Logged: ``train/g_loss`` (both
adversarial terms), ``train/cycle``, ``train/identity``, ``train/loss`` (the generators' total),
``train/d_loss``; ``val/loss``: the cycle L1 of the sampling generators, both directions, on the validation
split. ``generate(sources, direction="a2b" | "b2a")``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from gen_lightning.gan.losses import discriminator_loss, generator_loss
from gen_lightning.img2img.base import Adversarial, ImageTranslator, PatchGAN, display
from gen_lightning.img2img.nets import PatchDiscriminator, ResnetGenerator
from gen_lightning.img2img.pix2pix import same_size
from gen_lightning.nn.ema import EMA

DIRECTIONS = ("a2b", "b2a")


def linear_decay(step: int, constant_steps: int, decay_steps: int) -> float:
    """The learning-rate factor of batch ``step``: 1, then linearly to 0 (Zhu et al. section 4, 'Training')."""
    if decay_steps <= 0:
        return 1.0
    return max(0.0, 1.0 - max(0, step - constant_steps) / (decay_steps + 1))


@dataclass
class CycleGANSettings:
    num_res_blocks: int = 9  # 9 for 256x256, 6 for 128x128 (the paper)
    cycle_weight: float = 10.0  # lambda of eq. 3
    identity_weight: float = 0.5  # relative to cycle_weight; 0 when the domains' channels differ
    pool_size: int = 50  # generated images in each discriminator's history
    lr_constant_steps: int = 0  # batches at the full learning rate (the paper: 100 epochs) ...
    lr_decay_steps: int = 0  # ... then linear decay to zero over this many (100 epochs); 0: no decay


class CycleGAN(ImageTranslator):
    """Two ResNet generators, two PatchGAN discriminators, cycle and identity losses; see the file docstring."""

    generate_options = ("direction",)
    settings = (Adversarial, PatchGAN, CycleGANSettings)
    defaults = {"loss": "lsgan", "norm": "instance"}

    def __init__(self, **settings) -> None:
        super().__init__(settings)
        hp = self.hparams
        self.automatic_optimization = False
        same_size("CycleGAN", hp.source_image_size, hp.image_size)
        ca, cb, size = hp.source_channels, hp.channels, hp.image_size
        if hp.identity_weight > 0 and ca != cb:
            raise ValueError(
                f"the identity loss feeds B images to G: A -> B, so it needs equal channels, but A has "
                f"{ca} and B {cb}: set model.identity_weight=0"
            )
        g, d = (hp.hidden_dim, hp.num_res_blocks, hp.norm), (size, hp.d_hidden_dim, hp.d_layers, hp.norm)
        self.generator = nn.ModuleDict({"a2b": ResnetGenerator(ca, cb, *g), "b2a": ResnetGenerator(cb, ca, *g)})
        self.discriminator = nn.ModuleDict({"a": PatchDiscriminator(ca, *d), "b": PatchDiscriminator(cb, *d)})
        self.ema = EMA(self.generator, hp.ema_decay) if hp.ema_decay else None
        # History pools of generated images (module state: saved and restored with the weights).
        self.register_buffer("pool_a", torch.zeros(hp.pool_size, ca, size, size))
        self.register_buffer("pool_b", torch.zeros(hp.pool_size, cb, size, size))
        self.register_buffer("pool_fill", torch.zeros(2, dtype=torch.long))  # stored images in pool a, b

    # ---- the contract ----------------------------------------------------------------------------------------
    def translate_with(self, sources: torch.Tensor, direction: str = "a2b") -> torch.Tensor:
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        hp = self.hparams
        channels = hp.source_channels if direction == "a2b" else hp.channels
        return self.sampling_net()[direction](self.check_sources(sources, channels, hp.image_size))

    def translate(self, sources: torch.Tensor) -> torch.Tensor:
        return self.sampling_net()["a2b"](sources)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        nets, a, b = self.sampling_net(), batch["source"], batch["target"]
        cycle = F.l1_loss(nets["b2a"](nets["a2b"](a)), a) + F.l1_loss(nets["a2b"](nets["b2a"](b)), b)
        self.val_loss.update(cycle, weight=a.shape[0])
        self.log("val/loss", self.val_loss, on_epoch=True, batch_size=a.shape[0], prog_bar=True)

    @torch.no_grad()
    def preview(self, batch: dict, generator: torch.Generator) -> dict:
        """Rows input | translated | translated back, for each direction."""
        out = {}
        for direction, key, back in (("a2b", "source", "b2a"), ("b2a", "target", "a2b")):
            x = batch[key][:8].to(self.device)
            y = self.generate(x, direction=direction)
            z = self.generate(y, direction=back)
            c = max(x.shape[1], y.shape[1])
            rows = torch.stack([display(x, c, x.shape[-1]), display(y, c, x.shape[-1]), display(z, c, x.shape[-1])], 1)
            out[direction] = (rows.flatten(0, 1), 3, ("input", "translated", "back"))
        return out

    # ---- training --------------------------------------------------------------------------------------------
    def configure_optimizers(self):
        hp = self.hparams
        schedule = partial(linear_decay, constant_steps=hp.lr_constant_steps, decay_steps=hp.lr_decay_steps)
        optimizers, schedulers = [], []
        for nets in (self.generator, self.discriminator):
            opt = torch.optim.Adam(nets.parameters(), lr=hp.lr, betas=tuple(hp.betas))
            optimizers.append(opt)
            schedulers.append({"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, schedule), "interval": "step"})
        return optimizers, schedulers

    def training_step(self, batch: dict, batch_idx: int) -> None:
        a, b = batch["source"], batch["target"]  # (B, C_a, H, W), (B, C_b, H, W), drawn independently
        opt_g, opt_d = self.optimizers()
        fakes: dict[str, torch.Tensor] = {}
        logs = self.optimizer_step_on(opt_g, lambda: self._generator_loss(a, b, fakes))
        pooled_a = self._query(self.pool_a, 0, fakes["a"])
        pooled_b = self._query(self.pool_b, 1, fakes["b"])
        logs.update(self.optimizer_step_on(opt_d, lambda: self._discriminator_loss(a, b, pooled_a, pooled_b)))
        for scheduler in self.lr_schedulers():
            scheduler.step()
        if self.ema is not None:
            self.ema.update(self.generator)
        self.log_dict(logs, batch_size=a.shape[0])

    def _generator_loss(self, a: torch.Tensor, b: torch.Tensor, fakes: dict):
        hp, g, d = self.hparams, self.generator, self.discriminator
        fake_b, fake_a = g["a2b"](a), g["b2a"](b)
        adversarial = generator_loss(hp.loss, d["b"](fake_b)) + generator_loss(hp.loss, d["a"](fake_a))
        cycle = F.l1_loss(g["b2a"](fake_b), a) + F.l1_loss(g["a2b"](fake_a), b)  # eq. 2
        loss = adversarial + hp.cycle_weight * cycle
        logs = {"train/g_loss": adversarial, "train/cycle": cycle}
        if hp.identity_weight > 0:
            identity = F.l1_loss(g["a2b"](b), b) + F.l1_loss(g["b2a"](a), a)
            loss = loss + hp.identity_weight * hp.cycle_weight * identity
            logs["train/identity"] = identity
        fakes.update(a=fake_a.detach(), b=fake_b.detach())
        return loss, {**logs, "train/loss": loss}

    def _discriminator_loss(self, a, b, fake_a, fake_b):
        d, loss_fn = self.discriminator, self.hparams.loss
        loss_a = 0.5 * discriminator_loss(loss_fn, d["a"](a), d["a"](fake_a))  # halved, as Zhu et al.'s code
        loss_b = 0.5 * discriminator_loss(loss_fn, d["b"](b), d["b"](fake_b))
        return loss_a + loss_b, {"train/d_loss": loss_a + loss_b}

    @torch.no_grad()
    def _query(self, pool: torch.Tensor, which: int, images: torch.Tensor) -> torch.Tensor:
        """Shrivastava et al. 2017's image history: the images the discriminator sees instead of ``images``."""
        size = pool.shape[0]
        if size == 0:
            return images
        out = images.clone()
        for i in range(len(images)):  # sequential: each image may replace one stored before it
            filled = int(self.pool_fill[which])
            if filled < size:
                pool[filled] = images[i]
                self.pool_fill[which] += 1
            elif float(torch.rand(())) > 0.5:  # global RNG (CPU): restored exactly on resume
                j = int(torch.randint(size, ()))
                out[i] = pool[j]
                pool[j] = images[i]
        return out
