"""A toy conditional family that lives only in the tests: un-mirroring digits (image -> image).

It exists to prove contract v2 (docs/CONTRACT.md): a conditional family is its own folder with its own configs,
plugged in with ``hydra.searchpath``, and trains, evaluates and samples through ``fit``, ``evaluate``, ``sample``
and the ``paired_image`` protocol without an edit anywhere else in the package.
"""
