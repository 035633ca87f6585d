"""Character-level recurrent language models (LSTM, GRU) in the style of Karpathy's char-rnn."""
