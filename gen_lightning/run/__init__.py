"""The life of a run: its directory and lock (``run_dir``), its files written whole or not at all (``files``),
its checkpoints read safely (``checkpoint``), what a resume may change (``resume_policy``), the weights it may start
from (``init_from``) and the training itself (``train.fit``)."""
