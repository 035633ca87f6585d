"""Sequence-to-sequence models: the Transformer encoder-decoder and the attentive RNN encoder-decoder."""
