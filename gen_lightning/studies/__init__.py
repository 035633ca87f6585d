"""Comparative studies: ``gen-lightning study`` trains several models under one budget and protocol, from several
seeds, and ``gen-lightning report`` compares them (docs/STUDIES.md).

Each module imports only those above it in this list, never one below (tests/test_imports.py checks for cycles):

- ``spec``: the study file's schema, validated into a ``StudySpec``;
- ``plan``: every (run, seed) of a study composed into its training config;
- ``index``: ``study.json`` (the state of every run), run states, the check that runs already made still fit;
- ``launch`` (in-process), ``hydra_launcher`` (Hydra multirun) and ``evaluations`` (sampling variants of the
  trained checkpoints): they train and evaluate, and record the outcome in the index;
- ``jobs``: ``jobs=N`` runs at a time, each in a process of its own with its share of the GPUs or CPUs (``jobs=1``:
  ``launch`` in this process);
- ``report/``: reads a study from disk into tables, plots, samples and a W&B report run;
- ``command``: the ``study`` command, which runs the above and then the report.

This file imports nothing, so importing one module of the package loads only what that module needs.
"""
