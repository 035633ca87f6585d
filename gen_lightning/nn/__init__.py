"""Plain PyTorch building blocks shared by more than one family."""
