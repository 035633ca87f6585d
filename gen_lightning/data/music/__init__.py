"""Music data: tunes in ABC notation as text for the sequence families (``tunes.py``, ``data=music``).

The data module is exported here: configs name it ``gen_lightning.data.music.MusicDataModule``.
"""

from gen_lightning.data.music.tunes import MusicDataModule

__all__ = ["MusicDataModule"]
