"""``RUN_DIR/train.log`` of ``gen-lightning fit``: what the run logged, kept beside its checkpoints.

The terminal shows the same messages as before; the file gets, with a time stamp and the logger's name, the
project's log lines, Lightning's messages (Lightning's loggers write to their own terminal handler and do not
reach the root logger) and every warning shown. A resume appends to the file. A study's in-process runs write
their ``train.log`` another way (``studies/launch.py`` sends the whole terminal output there).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"  # Hydra's format for its job log
OWN_HANDLER_LOGGERS = ("lightning.pytorch", "lightning.fabric")  # they do not propagate to the root logger


def _root_file_handler(path: Path) -> logging.FileHandler | None:
    """The root's handler writing ``path`` (Hydra's job log, conf/config.yaml ``hydra.job_logging``), if any."""
    target = str(path.resolve())
    return next(
        (h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler) and h.baseFilename == target),
        None,
    )


@contextlib.contextmanager
def run_log(path: str | Path) -> Iterator[logging.Handler]:
    """Inside the block, log records and warnings also go to ``path`` (appended); at its end the file is closed,
    so a later run of the same process (a sweep, a test session) does not write into this run's log."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    handler = _root_file_handler(path)
    if handler is None:
        handler = logging.FileHandler(path, encoding="utf-8")  # mode "a": a resume continues the file
        handler.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(handler)
    own = [lg for lg in map(logging.getLogger, OWN_HANDLER_LOGGERS) if not lg.propagate]
    for logger in own:
        logger.addHandler(handler)
    shown = warnings.showwarning

    def show_and_log(message, category, filename, lineno, file=None, line=None):
        shown(message, category, filename, lineno, file, line)
        text = warnings.formatwarning(message, category, filename, lineno, line).rstrip()
        handler.handle(logging.LogRecord("py.warnings", logging.WARNING, filename, lineno, text, None, None))

    warnings.showwarning = show_and_log
    try:
        yield handler
    finally:
        warnings.showwarning = shown
        for logger in (*own, root):
            logger.removeHandler(handler)
        handler.close()
