"""The life of a run: prepared once (``prepare``: checks, resume, data module, model, lock), trained (``train.fit``),
its checkpoints read safely (``checkpoint``) and only as declared classes (``declared``), what a resume may change
(``resume_policy``), the weights it may start from (``init_from``), the data it read (``fingerprint``). The layout of
a run directory (``gen_lightning/run_dir.py``) and the file writers (``gen_lightning/files.py``) sit below it, for
the callbacks and loggers too."""
