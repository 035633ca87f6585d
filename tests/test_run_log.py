"""``RUN_DIR/train.log`` of ``gen-lightning fit`` (gen_lightning/run/run_log.py)."""

from __future__ import annotations

import logging
import warnings

from gen_lightning.run.run_log import run_log


def test_the_run_log_holds_lightnings_messages_the_projects_and_warnings_and_is_closed_after(tmp_path, monkeypatch):
    import lightning.pytorch  # noqa: F401  (its logger set up as in a run)

    path = tmp_path / "run" / "train.log"
    lightning = logging.getLogger("lightning.pytorch")
    # As Lightning sets itself up outside pytest (no root handler at import): its own terminal handler, no propagation.
    monkeypatch.setattr(lightning, "propagate", False)
    monkeypatch.setattr(lightning, "level", logging.INFO)
    monkeypatch.setattr(logging.getLogger("gen_lightning"), "level", logging.INFO)
    terminal = []
    monkeypatch.setattr(warnings, "showwarning", lambda message, *args: terminal.append(str(message)))
    with run_log(path), warnings.catch_warnings():
        warnings.simplefilter("always")
        lightning.info("GPU available: False")
        logging.getLogger("gen_lightning.run.train").warning("resumed from step 40")
        warnings.warn("the data loader has few workers", UserWarning, stacklevel=1)
    text = path.read_text()
    assert "[lightning.pytorch][INFO] - GPU available: False" in text
    assert "[gen_lightning.run.train][WARNING] - resumed from step 40" in text
    assert "UserWarning: the data loader has few workers" in text
    assert terminal == ["the data loader has few workers"]  # still shown where it was shown before
    lightning.info("a later run in this process")
    assert "a later run" not in path.read_text()  # the file was let go at the end of the run
    with run_log(path):
        lightning.info("resumed")
    assert path.read_text().startswith(text) and "resumed" in path.read_text()  # a resume appends
