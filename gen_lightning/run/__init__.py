"""The life of a run. ``prepare`` owns everything before training, as steps each in its own module and each taken
once: what a resume continues from (``resume_policy``), the config's checks (``checks``), the weights a run may start
from (``init_from``), the data module and model (``build``), torch's threads (``threads``), the data it read
(``fingerprint``); then the run directory is locked and laid out. ``train.fit`` trains the prepared run with its
callbacks, loggers and trainer (``trainer``). Checkpoints are read safely (``checkpoint``) and only as declared
classes (``declared``). The layout of a run directory (``gen_lightning/run_dir.py``) and the file writers
(``gen_lightning/files.py``) sit below it, for the callbacks and loggers too."""
