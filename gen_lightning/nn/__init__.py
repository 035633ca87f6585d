"""What more than one family shares: the LightningModule bases ``LanguageModel`` (text: RNN, GPT, BERT) and
``ImageModel`` (VAE, GAN, DDPM), and the plain PyTorch pieces they build on (``ema``, ``optim``, ``sampling``,
``token_metrics``), hyperparameters listed once as dataclasses (``hparams``), eval mode for sampling and metrics
(``eval_mode``) and a process's place in a distributed run (``distributed``)."""
