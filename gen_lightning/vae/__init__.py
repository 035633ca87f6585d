"""The VAE family: Gaussian-latent autoencoders trained on the evidence lower bound."""
