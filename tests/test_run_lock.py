"""The lock of a run directory (gen_lightning/run_dir.py): removed at the end of a run, taken over from a dead
holder, never held on a file removed from the directory."""

from __future__ import annotations

from conftest import tiny_overrides

from gen_lightning.config import compose
from gen_lightning.run import train


def test_a_finished_run_leaves_no_lock_and_a_lock_of_a_finished_holder_is_not_kept(tmp_path, monkeypatch):
    import os

    from gen_lightning import run_dir as run_dirs

    run = tmp_path / "run"
    train.fit(compose(tiny_overrides(run, "trainer.max_steps=2")))
    assert not (run / ".lock").exists()  # released and removed at the end of the run
    # A lock file left by a dead process (kill -9 leaves it; the kernel released its flock) is taken over.
    other = tmp_path / "other"
    other.mkdir()
    (other / ".lock").write_text("999999\n")
    run_dirs.lock(other)
    assert (other / ".lock").read_text() == f"{os.getpid()}\n"
    run_dirs.release(other)
    assert not (other / ".lock").exists()
    # A writer that opened .lock just before its holder removed it gets the flock on a file no longer there: it
    # must not count as holding the run (a third process may hold the new .lock); lock() takes the new file.
    (other / ".lock").write_text("")
    orphan = os.open(other / ".lock", os.O_RDWR)
    (other / ".lock").unlink()
    opened, real_open = [], os.open
    monkeypatch.setattr(os, "open", lambda *a, **k: opened.append(a) or (orphan if len(opened) == 1 else real_open(*a)))
    run_dirs.lock(other)
    assert len(opened) == 2 and (other / ".lock").is_file()  # the orphan refused, the new .lock created and held
    assert run_dirs._same_file(run_dirs._held[str(other.resolve())], other / ".lock")
    run_dirs.release(other)
    assert not (other / ".lock").exists()


def test_a_run_directory_that_cannot_be_laid_out_is_refused_and_its_lock_released(tmp_path, monkeypatch):
    """prepare locks the run directory, then lays it out (config.yaml, data_fingerprint.json): a full disk there
    is the error, the lock is released (no .lock kept, the next attempt takes it), and no half-written file stays."""
    import errno

    import pytest

    from gen_lightning import files
    from gen_lightning import run_dir as run_dirs
    from gen_lightning.run import prepare

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    run = tmp_path / "run"
    cfg = compose(tiny_overrides(run, "trainer.max_steps=2"))
    monkeypatch.setattr(files, "write_json", full)
    with pytest.raises(OSError, match="No space left"):
        prepare.prepare(cfg)
    assert not (run / ".lock").exists() and str(run.resolve()) not in run_dirs._held
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml"]  # written whole before the fingerprint failed
    monkeypatch.undo()
    assert train.fit(cfg)["status"] == "completed"


def test_a_resume_of_a_run_another_process_holds_is_refused_before_it_reads_or_tidies_anything(tmp_path):
    """A resume while the run still trains elsewhere: refused with the holder named, before its checkpoint is read
    or its temporary files (a checkpoint being written) are removed as stale; the same resume works once it ended."""
    import fcntl
    import os

    import pytest

    from gen_lightning.run_dir import RunDirLocked

    run = tmp_path / "run"
    train.fit(compose(tiny_overrides(run, "trainer.max_steps=2")))
    writing = run / "checkpoints" / "last.ckpt.4242.tmp"  # the live writer's next checkpoint, half written
    writing.write_bytes(b"half")
    holder = os.open(run / ".lock", os.O_RDWR | os.O_CREAT)  # another open file: flock sees another holder
    fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(holder, b"4242\n")
    try:
        with pytest.raises(RunDirLocked, match=r"in use by another gen-lightning process \(pid 4242\)"):
            train.fit(compose(tiny_overrides(run, "resume=true", "trainer.max_steps=4")))
        assert writing.read_bytes() == b"half"
    finally:
        os.close(holder)  # the holder ends: the kernel releases its lock
    train.fit(compose(tiny_overrides(run, "resume=true", "trainer.max_steps=4")))
    assert not writing.exists()  # now a dead writer's leftover: removed
