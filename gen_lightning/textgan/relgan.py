"""A Gumbel-softmax text GAN after RelGAN (Nie, Narodytska & Patel, ICLR 2019), with an LSTM generator.

Sampling a token is not differentiable; RelGAN relaxes it (section 2.2, Jang et al. 2017). At step t, with the
generator's logits o_t and Gumbel noise g_t:

    y_t = argmax(o_t + g_t)                       (the token, fed back as the next input: a true sample of G)
    y~_t = softmax(beta * (o_t + g_t))            (its relaxation, what the discriminator sees; eq. 3)

The inverse temperature beta grows from 1 to ``beta_max`` over ``beta_steps`` adversarial batches with RelGAN's
exponential schedule (section 2.3, "exp"): beta_n = beta_max ** (n / N), then stays there. It is a function of the
``batches`` buffer, so a resumed run continues the schedule exactly. Loss: the relativistic standard GAN
(Jolicoeur-Martineau 2019; RelGAN eq. 1-2), L_D = softplus(-(D(x) - D(G(z)))), L_G = softplus(-(D(G(z)) - D(x))).
The discriminator reads one-hot real sentences and relaxed fakes through ``d_num_rep`` embedding
representations (RelGAN's "multiple representations"), one logit each, the losses averaged over them.

Generator: an LSTM rather than RelGAN's relational memory (Santoro et al. 2018). On this 2-core CPU the relational
memory (multi-head attention over memory slots at every step, 2 x 256 in the paper) multiplies the per-step cost
of a 32-unit LSTM many times over, and the comparison this project makes (Caccia et al. 2020: GANs against the
MLE temperature curve) is about the training signal, not the cell. Phases and optimizers: gen_lightning/textgan/base.py.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gen_lightning.textgan.base import TextGAN
from gen_lightning.textgan.nets import RowNoise


class RelGAN(TextGAN):
    """Gumbel-softmax GAN with an LSTM generator; see the file docstring. Args besides ``TextGAN``'s:
    ``beta_max`` (the largest inverse temperature; RelGAN: 100 or 1000), ``beta_steps`` (adversarial batches of
    the exponential schedule)."""

    def __init__(self, tokenizer: dict, beta_max: float = 100.0, beta_steps: int = 1000, **kwargs) -> None:
        kwargs.setdefault("d_num_rep", 64)  # RelGAN's representations
        kwargs.setdefault("d_pretrain_steps", 0)  # RelGAN goes from maximum likelihood to adversarial training
        super().__init__(tokenizer, **kwargs)
        self.save_hyperparameters()
        if beta_max < 1 or beta_steps < 1:
            raise ValueError(f"model.beta_max must be >= 1 and model.beta_steps >= 1, got {beta_max}, {beta_steps}")

    @property
    def beta(self) -> float:
        """RelGAN's exponential schedule: beta_max ** (n / N), n the adversarial batches so far."""
        h = self.hparams
        return float(h.beta_max ** min(self.adversarial_batches / h.beta_steps, 1.0))

    def relaxed_draw(
        self, n: int, length: int, beta: float, noise: RowNoise | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, length, V) relaxed one-hot fakes (differentiable in the generator) and their (n, length) tokens,
        both cut after the first ``<eos>`` (then one-hot ``<pad>``, as real padding). The Gumbel noise of token t
        from ``noise.at(t)`` (torch's global RNG without)."""
        noise = noise or RowNoise()
        x, state = self.start_ids(n), None
        soft, hard = [], []
        for t in range(length):
            logits, state = self.net(x, state)  # (n, 1, V)
            u = noise.at(t).rand(n, 1, logits.size(-1), device=logits.device).clamp_(1e-10, 1.0 - 1e-7)
            perturbed = logits - torch.log(-torch.log(u))  # o_t + g_t, g_t ~ Gumbel(0, 1)
            x = perturbed.argmax(-1)  # (n, 1): the next input is the sampled token
            soft.append(F.softmax(beta * perturbed, dim=-1))
            hard.append(x)
        soft, hard = torch.cat(soft, dim=1), torch.cat(hard, dim=1)  # (n, T, V), (n, T)
        eos, pad = self.tokenizer.eos_id, self.tokenizer.pad_id
        after = ((hard == eos).long().cumsum(1) - (hard == eos).long()) > 0  # (n, T): after the first <eos>
        pad_row = F.one_hot(torch.tensor(pad, device=hard.device), soft.size(-1)).to(soft.dtype)
        soft = torch.where(after[..., None], pad_row, soft)
        return soft, hard.masked_fill(after, pad)

    def fakes_for_discriminator(self, n: int, length: int, noise: RowNoise | None = None) -> torch.Tensor:
        with torch.no_grad():
            return self.relaxed_draw(n, length, self.beta, noise)[0]

    def discriminator_loss(self, s_real: torch.Tensor, s_fake: torch.Tensor) -> torch.Tensor:
        return F.softplus(-(s_real - s_fake)).mean()  # RSGAN, RelGAN eq. 1

    def generator_step(self, real: torch.Tensor, opt_g, noise: RowNoise) -> None:
        beta = self.beta
        soft, _ = self.relaxed_draw(*real.shape, beta, noise.at("sample"))
        s_real = self.discriminator(real, noise.at("real")).detach()  # (B, R)
        s_fake = self.discriminator(soft, noise.at("fake"))  # D's weights get gradients; only opt_g steps
        loss = F.softplus(-(s_fake - s_real)).mean()  # RSGAN, RelGAN eq. 2
        self._step(opt_g, loss, self.discriminator)
        self.log_dict({"train/g_loss": loss.detach(), "train/beta": beta})

    def sample_info(self) -> dict:
        return {**super().sample_info(), "beta": self.beta}
