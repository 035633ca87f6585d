"""Image data: one image set (``ImageDataModule``), and pairs of images for image-to-image models.

- ``module.py``: ``ImageDataModule`` (``data=digits | mnist | cifar10 | image_folder | parquet``), decoding to uint8
- ``folders.py``: local image sources: a folder of images, paired ``A``/``B`` folders, the embedded digits
- ``img2img.py``: ``PairedImageDataModule`` (``data=paired*``) and ``UnpairedImageDataModule`` (``data=unpaired``)
- ``derive.py``: the named transforms that derive an input image from a target image (``downscale:4``, ``edges``)

The data modules are exported here: configs name them ``gen_lightning.data.images.<Class>``.
"""

from gen_lightning.data.images.img2img import PairedImageDataModule, UnpairedImageDataModule
from gen_lightning.data.images.module import ImageDataModule

__all__ = ["ImageDataModule", "PairedImageDataModule", "UnpairedImageDataModule"]
