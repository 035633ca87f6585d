"""Exports: a trained model as safetensors weights, a JSON config and a model card, loaded back without pickle.

``export_checkpoint(ckpt, out)`` writes one (``gen-lightning export``), ``load_module(DIR)`` rebuilds the model
(folder.py has the layout).
"""

from gen_lightning.export.folder import ExportError, export_checkpoint, is_export, load_module

__all__ = ["ExportError", "export_checkpoint", "is_export", "load_module"]
