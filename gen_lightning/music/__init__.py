"""Music as text: ABC notation tunes (corpora, conversion, rendering) and the validity metric of sampled tunes."""
