"""Data modules, one room per modality, on one base.

- ``base.py``: ``DataModule``, what every data module shares: its source in one vocabulary of keys (``path``,
  ``hub_name``, ``embedded``), the train/eval loaders, ``model_kwargs()``, ``dataset_key``
- ``sources.py``: the hub and parquet loaders, and ``DataSourceError``, the one error of a source that cannot be read
- ``decoding.py``: the one place where a text file's bytes become text (``data.encoding``)
- ``loaders.py``, ``buckets.py``: resumable, DDP-sharded samplers and loaders (by position; by length)
- ``images/``: one image set (``ImageDataModule``), image pairs for image-to-image models (``img2img.py``)
- ``text/``: a corpus for language models, labelled texts, text pairs for seq2seq, tokenizers
- ``music/``: ABC tunes as text
"""
