"""SeqGAN (Yu, Zhang, Wang & Yu, AAAI 2017): the generator as a policy, the discriminator's verdict as its reward.

The generator G_theta writes a sequence Y_1:T token by token; only a finished sequence can be judged, so the
action value of token y_t is estimated by Monte Carlo search: ``rollouts`` (M) completions of the prefix Y_1:t by
the roll-out policy G_beta, each scored by the discriminator (eq. 4):

    Q(Y_1:t-1, y_t) = 1/M sum_m D(MC^G_beta(Y_1:t; M)_m)   for t < T,      D(Y_1:T)   for t = T,

and the generator follows the policy gradient (eq. 6), here as the loss -mean_t log G_theta(y_t | Y_1:t-1) Q(t)
over the generated tokens (the first ``<eos>`` included, padding after it not). The roll-out policy is a delayed
copy of the generator (the paper's implementation): copied when the adversarial phase starts, then
``beta <- rate * beta + (1 - rate) * theta`` after every generator step (``rollout_update_rate``, 0.8 there).
The discriminator is trained with the standard GAN loss against fresh samples (eq. 5); it scores roll-outs in eval
mode (no dropout). Phases, optimizers and resume: gen_lightning/textgan/base.py.
"""

from __future__ import annotations

import torch

from gen_lightning.rnn.nets import RNNConfig, RNNNet
from gen_lightning.textgan.base import TextGAN, bce_real_fake
from gen_lightning.textgan.nets import RowNoise, draw_tokens, mask_after_eos


class SeqGAN(TextGAN):
    """Policy-gradient text GAN; see the file docstring. Args besides ``TextGAN``'s: ``rollouts`` (M, Monte Carlo
    completions per prefix), ``rollout_update_rate`` (weight of the old roll-out copy in its update)."""

    def __init__(self, tokenizer: dict, rollouts: int = 16, rollout_update_rate: float = 0.8, **kwargs) -> None:
        super().__init__(tokenizer, **kwargs)
        self.save_hyperparameters()
        if rollouts < 1 or not 0.0 <= rollout_update_rate <= 1.0:
            raise ValueError(
                f"model.rollouts must be >= 1 and model.rollout_update_rate in [0, 1], got {rollouts}, "
                f"{rollout_update_rate}"
            )
        h = self.hparams
        self.rollout_net = RNNNet(RNNConfig(self.tokenizer.vocab_size, "lstm", h.hidden_dim, h.num_layers, h.dropout))
        self.rollout_net.requires_grad_(False)

    def start_adversarial(self, opt_g) -> None:
        super().start_adversarial(opt_g)
        self.rollout_net.load_state_dict(self.net.state_dict())

    @torch.no_grad()
    def update_rollout(self) -> None:
        rate = self.hparams.rollout_update_rate
        for beta, theta in zip(self.rollout_net.parameters(), self.net.parameters()):
            beta.mul_(rate).add_(theta, alpha=1.0 - rate)

    def discriminator_loss(self, s_real: torch.Tensor, s_fake: torch.Tensor) -> torch.Tensor:
        return bce_real_fake(s_real, s_fake)

    @torch.no_grad()
    def rewards(self, ids: torch.Tensor, noise: RowNoise | None = None) -> torch.Tensor:
        """Q(t) of eq. 4 for (B, T) generated ids (cut after ``<eos>``): (B, T) discriminator probabilities.

        A prefix that holds ``<eos>`` is a finished sentence, whose completions are all padding: its Q is D(Y) (the
        discriminator scores in eval mode, so it is exact). Roll-outs stop once every completion has ended, and
        prefixes longer than the longest sentence are not rolled out: the cost follows the sentences' lengths, not
        T (max_length + 1). Token k of the completions of prefix t is drawn by ``noise.at(t, k)``, whatever this
        process's sentences ended before (torch's global RNG without ``noise``)."""
        noise = noise or RowNoise()
        b, t_max = ids.shape
        m, eos, pad = self.hparams.rollouts, self.tokenizer.eos_id, self.tokenizer.pad_id
        d_was_training = self.discriminator.training
        self.discriminator.eval()
        score = lambda x: torch.sigmoid(self.discriminator(mask_after_eos(x, eos, pad)[0])).mean(1)  # noqa: E731
        q = score(ids)[:, None].repeat(1, t_max)  # D(Y_1:T): every finished prefix's value
        seq = ids.repeat(m, 1)  # (M * B, T): the M roll-outs of each sequence side by side
        longest = int((ids != pad).sum(1).max())  # tokens of the longest sentence, its <eos> included
        _, state = self.rollout_net(self.start_ids(m * b))
        for t in range(1, min(longest, t_max)):
            logits, state = self.rollout_net(seq[:, t - 1 : t], state)  # the prefix y_1..y_t read
            ended = (seq[:, :t] == eos).any(1)  # (M * B,)
            tail, s, nxt_logits = [], state, logits
            while len(tail) < t_max - t and not bool(ended.all()):  # complete y_t+1.. with the roll-out policy
                u = noise.at(t, len(tail)).rand(b, 1, blocks=m, device=seq.device)  # the (M * B) layout of seq
                nxt = draw_tokens(nxt_logits[:, -1], u)  # (M * B, 1)
                tail.append(nxt)
                ended |= nxt[:, 0] == eos
                nxt_logits, s = self.rollout_net(nxt, s)
            full = torch.cat([seq[:, :t], *tail], dim=1)
            full = torch.cat([full, full.new_full((m * b, t_max - full.size(1)), pad)], dim=1)  # (M * B, T)
            q[:, t - 1] = score(full).view(m, b).mean(0)
        self.discriminator.train(d_was_training)
        return q

    def generator_step(self, real: torch.Tensor, opt_g, noise: RowNoise) -> None:
        ids, kept = self.draw(*real.shape, noise.at("sample"))  # (B, T)
        q = self.rewards(ids, noise.at("rollout"))  # (B, T)
        inputs = torch.cat([self.start_ids(len(ids)), ids[:, :-1]], dim=1)
        logp = self(inputs).log_softmax(-1).gather(-1, ids[..., None])[..., 0]  # (B, T)
        tokens = self.global_tokens(kept.sum())  # a mean over the global batch's generated tokens
        loss = -(logp * q * kept).sum() / tokens
        self._step(opt_g, loss, self.discriminator)
        self.update_rollout()
        self.log_dict({"train/g_loss": loss.detach(), "train/reward": (q * kept).sum() / tokens})
