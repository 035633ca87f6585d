"""Text classifiers whose bodies are the sequence families' networks (BERT, GPT, LSTM, GRU), one shared head."""
