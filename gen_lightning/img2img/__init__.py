"""Image-to-image models: super-resolution (SRResNet, SRGAN), pix2pix, CycleGAN and the resizing baseline."""
