"""Text GANs: SeqGAN (policy gradient with Monte Carlo roll-outs) and a Gumbel-softmax GAN after RelGAN."""
