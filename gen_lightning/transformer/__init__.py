"""Transformer language models: GPT (decoder-only, next-token) and BERT (encoder-only, masked tokens)."""
