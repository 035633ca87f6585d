"""What SeqGAN and the Gumbel-softmax GAN share: an LSTM generator, a CNN discriminator and a three-phase schedule.

Phases, by the number of training batches seen (the ``batches`` buffer, saved in checkpoints, so a resumed run is
in the phase it left, mid-phase included):

1. ``pretrain_steps`` batches of maximum likelihood for the generator (teacher forcing, padding masked), as every
   text GAN starts (SeqGAN section 4; RelGAN section 3.3). ``pretrain_steps=0`` with ``init_from=`` an LSTM
   language model (``model=lstm`` of the same ``hidden_dim``/``num_layers``) starts from that model instead;
2. ``d_pretrain_steps`` batches of discriminator training against the pre-trained generator's samples;
3. adversarial: per batch, one generator step (the subclass's: policy gradient or Gumbel-softmax), then
   ``d_steps`` discriminator steps on fresh samples against the real batch.

Manual optimisation with two Adam optimizers (generator ``lr``, then ``lr_adv`` from the adversarial phase on, set in
the optimizer's state so a resume keeps it; discriminator ``lr_d``). Lightning's ``global_step`` counts the steps
of both optimizers: one per batch in phases 1-2, ``1 + d_steps`` per batch in phase 3. Generated sequences are cut
after their first ``<eos>`` and padded like real sentences (``mask_after_eos``).

Random numbers (samples, roll-outs, Gumbel noise, the discriminator's dropout) come from ``RowNoise``
(textgan/nets.py): each draw is seeded from the ``noise_seed`` buffer (the run's seed, ``torch.initial_seed()``
when the model is built), the ``batches`` clock and the draw's name, and draws the uniforms of the whole global
batch, of which this process keeps its rows. So two DDP processes with batches of B draw for each sentence what
one process with batches of 2B draws, and a resumed run draws what the uninterrupted one did (both buffers are in
the checkpoint). Losses are means over the global batch: a per-token mean divides by the global token count
(``global_tokens``), since ranks hold different numbers of tokens. The generator's own ``dropout`` (0 by default)
still draws from each process's global RNG: with it, DDP is not equal to one process.

Validation is the generator's, as a language model (``val/loss`` = NLL per token of the validation sentences);
``best.ckpt`` by ``val/loss`` favours the maximum-likelihood phase, so evaluate a GAN's ``last.ckpt``.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F

from gen_lightning.data.text.tokenizers import from_config
from gen_lightning.nn.distributed import dist_info
from gen_lightning.nn.eval_mode import evaluating
from gen_lightning.nn.language_model import LanguageModel
from gen_lightning.rnn.nets import RNNConfig, RNNNet
from gen_lightning.textgan.nets import CNNDiscriminator, RowNoise, draw_tokens, mask_after_eos, real_sequences

PHASES = ("mle", "d_pretrain", "adversarial")


class TextGAN(LanguageModel):
    """Base of the text GANs; a subclass implements ``generator_step`` and ``discriminator_loss``. The generator is
    a language model, so the sentences protocol reports its nll_test (``next_token_likelihood``)."""

    @classmethod
    def groups(cls) -> tuple[type, ...]:
        return ()  # its constructor lists every hyperparameter itself (two optimisers, phases: no WarmupCosine)

    def __init_subclass__(cls, **kwargs) -> None:
        """A GAN's signature: its own arguments, then the base's it passes on through ``**kwargs``."""
        super().__init_subclass__(**kwargs)
        own = [p for p in inspect.signature(cls.__init__).parameters.values() if p.kind is not p.VAR_KEYWORD]
        names = {p.name for p in own}
        passed = [
            p.replace(kind=p.KEYWORD_ONLY)
            for p in inspect.signature(TextGAN.__init__).parameters.values()
            if p.name not in names
        ]
        cls.__signature__ = inspect.Signature([p for p in own if p.name != "self"] + passed)

    init_prefixes = ("net.",)  # init_from= an LSTM language model fills the generator

    def __init__(
        self,
        tokenizer: dict,
        hidden_dim: int = 32,
        num_layers: int = 1,
        dropout: float = 0.0,
        d_embed_dim: int = 64,
        d_filter_widths: list[int] = (2, 3, 4, 5),
        d_num_filters: list[int] = (100, 100, 100, 100),
        d_dropout: float = 0.25,
        d_num_rep: int = 1,
        pretrain_steps: int = 1000,
        d_pretrain_steps: int = 100,
        d_steps: int = 1,
        lr: float = 1e-2,
        lr_adv: float = 1e-3,
        lr_d: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.999),
        gradient_clip_val: float = 5.0,
    ) -> None:
        super().__init__(tokenizer, {})  # no dataclass groups: the arguments above are the whole list
        self.save_hyperparameters()
        for key in ("pretrain_steps", "d_pretrain_steps", "d_steps"):
            if self.hparams[key] < 0:
                raise ValueError(f"model.{key} must be >= 0, got {self.hparams[key]}")
        self.automatic_optimization = False
        self.tokenizer = from_config(tokenizer)
        vocab = self.tokenizer.vocab_size
        self.net = RNNNet(RNNConfig(vocab, "lstm", hidden_dim, num_layers, dropout))
        widths, filters = list(d_filter_widths), list(d_num_filters)
        self.discriminator = CNNDiscriminator(vocab, d_embed_dim, widths, filters, d_dropout, d_num_rep)
        self.register_buffer("batches", torch.zeros((), dtype=torch.long))  # the phase clock (saved)
        # The seed of the training draws (saved): the run's seed, as set before the model is built.
        self.register_buffer("noise_seed", torch.tensor(torch.initial_seed() % 2**63))
        self.register_load_state_dict_pre_hook(_default_noise_seed)

    # ------------------------------------------------------------ schedule

    @property
    def phase(self) -> str:
        b, h = int(self.batches), self.hparams
        return (
            PHASES[0] if b < h.pretrain_steps else PHASES[1] if b < h.pretrain_steps + h.d_pretrain_steps else PHASES[2]
        )

    @property
    def adversarial_batches(self) -> int:
        return max(0, int(self.batches) - self.hparams.pretrain_steps - self.hparams.d_pretrain_steps)

    def start_adversarial(self, opt_g) -> None:
        """Called before the first adversarial batch (the subclass may copy the generator)."""
        for group in opt_g.param_groups:
            group["lr"] = self.hparams.lr_adv

    # ------------------------------------------------------------ sequences

    def start_ids(self, n: int) -> torch.Tensor:
        return torch.full((n, 1), self.tokenizer.eos_id, dtype=torch.long, device=self.device)

    def step_noise(self) -> RowNoise:
        """The random numbers of this batch: this process's rows of the global batch's (see the file docstring)."""
        rank, world = dist_info()
        return RowNoise(int(self.noise_seed), rank, world, (int(self.batches),))

    def global_tokens(self, count: torch.Tensor) -> torch.Tensor:
        """The divisor of a per-token mean over the global batch: its token count / world size, since DDP averages
        the processes' gradients (sum_r (s_r / (N / w)) / w = sum_r s_r / N). ``count`` itself alone."""
        world = dist_info()[1]
        if world == 1:
            return count
        count = count.detach().clone()
        torch.distributed.all_reduce(count)
        return count / world

    @torch.no_grad()
    def draw(self, n: int, length: int, noise: RowNoise | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """n generated sequences (n, length), cut after ``<eos>``, and the kept mask; token t drawn by
        ``noise.at(t)`` (torch's global RNG without)."""
        noise = noise or RowNoise()
        x, state, ids = self.start_ids(n), None, []
        for t in range(length):
            logits, state = self.net(x, state)  # (n, 1, V)
            x = draw_tokens(logits[:, -1], noise.at(t).rand(n, 1, device=logits.device))  # (n, 1)
            ids.append(x)
        return mask_after_eos(torch.cat(ids, dim=1), self.tokenizer.eos_id, self.tokenizer.pad_id)

    def fakes_for_discriminator(self, n: int, length: int, noise: RowNoise | None = None) -> torch.Tensor:
        """What the discriminator is trained against: ids (SeqGAN) or relaxed distributions (RelGAN)."""
        return self.draw(n, length, noise)[0]

    # ------------------------------------------------------------ steps

    def training_step(self, batch, batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        phase, noise = self.phase, self.step_noise()
        if phase == "mle":
            inputs, targets = batch  # (B, T) each, targets -100 at the padding
            losses = F.cross_entropy(self(inputs).flatten(0, 1), targets.flatten(), reduction="sum")
            loss = losses / self.global_tokens((targets != -100).sum())
            self._step(opt_g, loss, self.discriminator)
            self.log("train/loss", loss.detach(), prog_bar=True)
        else:
            real = real_sequences(batch[1], self.tokenizer.pad_id)  # (B, T)
            if phase == "adversarial":
                if self.adversarial_batches == 0:
                    self.start_adversarial(opt_g)
                self.generator_step(real, opt_g, noise.at("g"))
            for k in range(self.hparams.d_steps if phase == "adversarial" else 1):
                self.discriminator_step(real, opt_d, noise.at("d", k))
        self.batches += 1
        self.log("train/phase", float(PHASES.index(phase)))

    def discriminator_step(self, real: torch.Tensor, opt_d, noise: RowNoise) -> None:
        fake = self.fakes_for_discriminator(*real.shape, noise.at("sample"))
        s_real, s_fake = self.discriminator(real, noise.at("real")), self.discriminator(fake, noise.at("fake"))
        loss = self.discriminator_loss(s_real, s_fake)
        self._step(opt_d, loss, self.net)
        logs = {"train/d_loss": loss, "train/d_real": s_real.mean(), "train/d_fake": s_fake.mean()}
        self.log_dict({k: v.detach() for k, v in logs.items()}, batch_size=real.shape[0])

    def discriminator_loss(self, s_real: torch.Tensor, s_fake: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def generator_step(self, real: torch.Tensor, opt_g, noise: RowNoise) -> None:
        raise NotImplementedError

    def _step(self, optimizer, loss: torch.Tensor, other: torch.nn.Module) -> None:
        """One optimizer step; under DDP the other network gets a zero gradient (see gan/module.py
        ``_untouched``), so DDP needs no search for unused parameters."""
        distributed = self._trainer is not None and self.trainer.world_size > 1
        untouched = 0.0 * sum(p.sum() for p in other.parameters()) if distributed else 0.0
        optimizer.zero_grad()
        self.manual_backward(loss + untouched)
        if self.hparams.gradient_clip_val:
            self.clip_gradients(optimizer, self.hparams.gradient_clip_val, "norm")
        optimizer.step()

    def configure_optimizers(self):
        h = self.hparams
        betas = tuple(h.betas)
        return (
            torch.optim.Adam(self.net.parameters(), lr=h.lr, betas=betas),
            torch.optim.Adam(self.discriminator.parameters(), lr=h.lr_d, betas=betas),
        )

    def configure_gradient_clipping(self, *args, **kwargs) -> None:  # manual optimisation clips in _step
        return None

    # ------------------------------------------------------------ outputs

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) ids -> (B, T, V) the generator's next-token logits."""
        return self.net(idx)[0]

    def sample_info(self) -> dict:
        return {"sampler": "ancestral", "generator": "lstm", "phase": self.phase, "weights": "raw"}

    def preview(self, batch, generator: torch.Generator) -> dict[str, list[str]]:
        """Eight sentences (the first line of eight 40-token samples)."""
        return {"text": [s.split("\n", 1)[0] for s in self.sample(8, 40, generator=generator)]}

    @torch.no_grad()
    def discriminator_accuracy(self, real: torch.Tensor) -> float:
        """Share of real and fresh fake sequences the discriminator classifies right (a diagnostic for tests)."""
        with evaluating(self):
            fake = self.draw(*real.shape)[0]
            right = torch.cat([self.discriminator(real).mean(1) > 0, self.discriminator(fake).mean(1) <= 0])
        return float(right.float().mean())


def _default_noise_seed(module, state_dict, prefix, *args) -> None:
    """A checkpoint written before ``noise_seed`` existed loads (for ``sample``/``evaluate``) with seed 0."""
    state_dict.setdefault(prefix + "noise_seed", torch.tensor(0))


def bce_real_fake(s_real: torch.Tensor, s_fake: torch.Tensor) -> torch.Tensor:
    """Standard GAN discriminator loss on logits: -log D(x) - log(1 - D(G(z)))."""
    return F.softplus(-s_real).mean() + F.softplus(s_fake).mean()
