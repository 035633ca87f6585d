"""Other ecosystems' formats: Hugging Face model folders read into this package's networks and written back."""
