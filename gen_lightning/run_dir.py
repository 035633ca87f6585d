"""The layout of a run directory, in one place (README, "Every run directory").

    RUN_DIR/
      config.yaml            the resolved config the run was made with
      metrics.json           final and best value of every validation metric, history, status, protocol card
      checkpoints/last.ckpt  the newest state (resume); checkpoints/best.ckpt by the monitored metric
      samples/<name>/        preview grids, texts or tables, one file a validation (stepNNNNNNN.png|txt|tsv; a
                             protocol's files: a folder stepNNNNNNN/)
      figures/<name>/        figures of the metric protocols (e.g. a confusion matrix), stepNNNNNNN.png
      <mode>.png, samples.*  what `gen-lightning sample` wrote without out= (an image mode's grid; a text model's
                             samples in the format= writer's suffix)
      evaluations/<name>.*   evaluation variants of a study
      checkpoints/last[.split].eval.json, .evaluations.jsonl, .outputs.txt, .<figure>.png
                             what `gen-lightning evaluate` wrote (EvaluationFiles; out=PREFIX puts them elsewhere)
      wandb/                 the W&B run (offline-run-* by default); wandb_run_id.txt keeps its id for resume
      csv/, tensorboard/     the CSV and TensorBoard loggers' files; mlflow_run_id.txt keeps the MLflow run's id
      error.txt              the traceback of a run that failed
      train.log              the run's log: Lightning's messages, warnings, log lines (a study's runs: all they print)
      resumes.jsonl          what each resume changed (README, "Resume")
      data_fingerprint.json  size and sha256 of every local data file the run reads (checked on resume)
      .lock                  held by the process writing the run (one writer at a time), removed at its end

A search (``gen-lightning fit -m hparams_search=NAME``) keeps its own files in Hydra's sweep directory, beside the
run directories of its trials (SearchFiles):

    SWEEP_DIR/
      trials.jsonl           every trial's outcome: state, value, parameters, run directory, error
      best_trial.yaml        the best completed trial: value, parameters, checkpoint and its whole config
      .search.lock           held while a trial writes the two (a parallel launcher ends several at once)

Every module that reads or writes one of these names asks these objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunDir:
    path: Path  # given as text or a path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @classmethod
    def of_checkpoint(cls, ckpt: str | Path) -> RunDir:
        """The run directory of ``RUN_DIR/checkpoints/<name>.ckpt``."""
        return cls(Path(ckpt).resolve().parent.parent)

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.json"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def checkpoint(self, name: str = "last") -> Path:
        """``checkpoints/<name>.ckpt`` (``last`` or ``best``)."""
        return self.checkpoints / f"{name}.ckpt"

    @property
    def last(self) -> Path:
        return self.checkpoint("last")

    @property
    def best(self) -> Path:
        return self.checkpoint("best")

    @property
    def samples(self) -> Path:
        return self.path / "samples"

    def sample(self, name: str, step: int) -> Path:
        """``samples/<name>/stepNNNNNNN``: what a validation at ``step`` wrote of ``name`` (the suffix is the
        writer's: .png, .txt, .tsv, or none for a folder)."""
        return self.samples / name / step_name(step)

    def latest_samples(self) -> dict[str, Path]:
        """The newest file of every ``samples/<name>/`` folder (samples, reconstructions, text, ...)."""
        if not self.samples.is_dir():
            return {}
        folders = sorted(p for p in self.samples.iterdir() if p.is_dir())
        return {f.name: max(f.glob("step*")) for f in folders if any(f.glob("step*"))}

    def sampled(self, name: str) -> Path:
        """What ``gen-lightning sample`` writes here without ``out=`` (``sample.png``, ``samples.txt``, ...)."""
        return self.path / name

    @property
    def figures(self) -> Path:
        return self.path / "figures"

    def figure(self, name: str, step: int) -> Path:
        """``figures/<name>/stepNNNNNNN.png``: a metric protocol's figure of the validation at ``step``."""
        return self.figures / name / f"{step_name(step)}.png"

    @property
    def evaluations(self) -> Path:
        return self.path / "evaluations"

    def evaluation(self, name: str, suffix: str = ".json") -> Path:
        return self.evaluations / f"{name}{suffix}"

    @property
    def wandb_id(self) -> Path:
        return self.path / "wandb_run_id.txt"

    @property
    def mlflow_id(self) -> Path:
        return self.path / "mlflow_run_id.txt"

    @property
    def error(self) -> Path:
        return self.path / "error.txt"

    @property
    def log(self) -> Path:
        return self.path / "train.log"

    @property
    def resumes(self) -> Path:
        return self.path / "resumes.jsonl"

    @property
    def data_fingerprint(self) -> Path:
        return self.path / "data_fingerprint.json"


@dataclass(frozen=True)
class EvaluationFiles:
    """What ``gen-lightning evaluate`` writes for one checkpoint, named from one prefix: ``RUN_DIR/checkpoints/last``
    (``last.test`` for a split other than the protocol's), or the ``out=PREFIX`` the user gave."""

    prefix: str

    @classmethod
    def of(cls, checkpoint: str | Path, split_tag: str = "", out: str | None = None) -> EvaluationFiles:
        return cls(str(out or Path(checkpoint).with_suffix("")) + split_tag)

    @property
    def result(self) -> Path:
        """The latest evaluation: metrics, arguments and protocol card."""
        return Path(self.prefix + ".eval.json")

    @property
    def history(self) -> Path:
        """Every evaluation ever written at this prefix, one JSON line each."""
        return Path(self.prefix + ".evaluations.jsonl")

    @property
    def outputs(self) -> Path:
        """Per-example outputs, one a line."""
        return Path(self.prefix + ".outputs.txt")

    def figure(self, name: str) -> Path:
        return Path(f"{self.prefix}.{name}.png")


def step_name(step: int) -> str:
    """``stepNNNNNNN``: the name of what a validation at the global ``step`` wrote (sorts in step order)."""
    return f"step{step:07d}"


@dataclass(frozen=True)
class SearchFiles:
    """The files of a search in its sweep directory (see the file docstring)."""

    path: Path

    def __init__(self, sweep_dir: str | Path) -> None:
        object.__setattr__(self, "path", Path(sweep_dir))

    @property
    def trials(self) -> Path:
        return self.path / "trials.jsonl"

    @property
    def best_trial(self) -> Path:
        return self.path / "best_trial.yaml"

    @property
    def lock(self) -> Path:
        return self.path / ".search.lock"


def resumable_state(run_dir: str | Path) -> str:
    """What a resume of ``run_dir`` would start from, in words (for messages after a failure)."""
    import torch

    last = RunDir(run_dir).last
    if not last.is_file():
        return "No checkpoint was written, so the run cannot be resumed: restart it."
    try:
        step = torch.load(last, map_location="cpu", weights_only=True).get("global_step", "?")
    except Exception:
        return f"{last} cannot be read: restart the run."
    return f"The last good checkpoint, {last} (step {step}), is intact: resume with run_dir={run_dir} resume=true."


class RunDirError(RuntimeError):
    """The run directory does not fit the request (already used, nothing to resume, not writable)."""


class RunDirLocked(RuntimeError):
    """Another live process is writing this run directory."""


_held: dict[str, int] = {}  # run directories this process holds, path -> open lock file descriptor


def lock(run_dir: str | Path) -> None:
    """Hold ``RUN_DIR/.lock`` for the life of this run: one writer per run directory (``release`` ends it).

    An exclusive ``flock`` on an open file: the kernel releases it when the process ends, however it ends (kill -9
    included), so a lock file left by a dead process is simply taken over (a ``.lock`` in a run directory with no
    live writer is stale and harmless). The holder's pid is written into the file so that a refused second writer
    can name it. Creates ``run_dir`` (and nothing else in it)."""
    import fcntl
    import os

    path = Path(run_dir).resolve()
    if str(path) in _held:
        return
    path.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise _in_use(run_dir, holder) from None
        if _same_file(fd, path / ".lock"):
            break
        # The holder we waited behind removed the file when it finished (``release``): this lock is on a file no
        # longer in the directory, and another process may already hold a new ``.lock``. Take the new one.
        os.close(fd)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held[str(path)] = fd


def _in_use(run_dir: str | Path, holder: str) -> RunDirLocked:
    return RunDirLocked(
        f"run_dir={run_dir} is in use by another gen-lightning process (pid {holder}); wait for it to finish or "
        "stop it, or choose another run_dir (nothing was written)"
    )


def check_unlocked(run_dir: str | Path) -> None:
    """Refuse a run directory another live process holds (``lock``) before anything in it is read or tidied: a
    resume's reading of a checkpoint being replaced, its removal of a live writer's temporary files. Nothing is
    created; the lock itself is taken later, with the run's first write."""
    if is_locked(run_dir):
        holder = (Path(run_dir) / ".lock").read_text(errors="replace").strip() or "unknown"
        raise _in_use(run_dir, holder)


def _same_file(fd: int, path: Path) -> bool:
    """Whether the open ``fd`` is the file at ``path`` now (not one removed or replaced since it was opened)."""
    import os

    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino)


def release(run_dir: str | Path) -> None:
    """End the lock of ``lock``: the file is removed while still held (a finished run leaves no ``.lock``), then
    unlocked; a process that opened the old file meanwhile sees it gone and takes a new one (``lock``)."""
    import fcntl
    import os

    path = Path(run_dir).resolve()
    fd = _held.pop(str(path), None)
    if fd is not None:
        if _same_file(fd, path / ".lock"):
            (path / ".lock").unlink(missing_ok=True)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def is_locked(run_dir: str | Path) -> bool:
    """Whether another live process holds ``RUN_DIR/.lock`` (a run still training); nothing is created."""
    import fcntl
    import os

    path = Path(run_dir).resolve() / ".lock"
    if str(path.parent) in _held or not path.is_file():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases a lock taken here
    return False


def lay_out(run_dir: str | Path, cfg, data_files: dict, changes: dict | None) -> None:
    """The files a run writes once it holds its lock (``lock``): a new run's ``config.yaml`` and its
    ``data_fingerprint.json`` (``data_files``); a resume's line in ``resumes.jsonl`` (``changes``: what its command
    line changed, ``{key: [saved, new]}``) and, when it changed anything, ``config.yaml`` as the run now has it."""
    import time

    from omegaconf import OmegaConf

    from gen_lightning.files import append_jsonl, write_json, write_with

    run = RunDir(run_dir)
    config = OmegaConf.create(config_container(cfg))
    if changes is None:
        write_with(run.config, lambda tmp: OmegaConf.save(config, tmp))
        write_json(run.data_fingerprint, data_files)
        return
    append_jsonl(run.resumes, {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "changes": changes})
    if changes:
        write_with(run.config, lambda tmp: OmegaConf.save(config, tmp))


def config_container(cfg) -> dict:
    """A run's config as ``config.yaml`` holds it: every value resolved (a ``${now:...}`` must not change on
    resume), except the ``callbacks`` node, whose ``${checkpoint.*}``/``${samples.*}``/``${metrics}`` references
    stay so that what a resume changes there reaches the callbacks too."""
    from omegaconf import OmegaConf

    container = OmegaConf.to_container(cfg, resolve=True)
    if "callbacks" in cfg:
        container["callbacks"] = OmegaConf.to_container(cfg.callbacks, resolve=False)
    return container
