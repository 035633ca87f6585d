"""The ``gen-lightning`` command: ``fit | sample | evaluate | export | study | report``.

``fit`` is a Hydra application (config groups, overrides, ``--multirun``); the other commands take
``key=value`` arguments. Errors a user can act on are printed as one message, without a traceback.
"""

from __future__ import annotations

import errno
import os
import sys

USAGE = """usage: gen-lightning COMMAND [key=value ...]

commands:
  fit       train a model: gen-lightning fit [model=vae data=digits trainer=cpu logger=wandb ...] [--multirun]
            resume:        gen-lightning fit run_dir=DIR resume=true
  sample    write samples: gen-lightning sample ckpt=PATH [n=64] [out=FILE.png] [mode=sample|reconstruct|...]
  evaluate  image metrics of a checkpoint: gen-lightning evaluate ckpt=PATH [metrics.num_samples=...]
  export    safetensors, config and model card: gen-lightning export ckpt=PATH_OR_RUN_DIR out=DIR [format=hf]
  study     run a comparison: gen-lightning study experiments/NAME.yaml [study_dir=DIR] [launcher=inprocess|hydra]
            [report=false] [dry_run=true] [key=value ...]; the same command again resumes it
  report    tables and plots of a study: gen-lightning report experiments/NAME.yaml (or a study directory)

`gen-lightning fit --help` shows the config groups and their options.
"""

COMMANDS = ("fit", "sample", "evaluate", "export", "study", "report")


# Errors a user can act on: one message, no traceback (GEN_LIGHTNING_DEBUG=1 shows it; a run's error.txt keeps it).
def _user_errors() -> tuple[type[BaseException], ...]:
    from hydra.errors import HydraException
    from lightning.pytorch.utilities.exceptions import MisconfigurationException
    from omegaconf.errors import OmegaConfBaseException

    from gen_lightning.callbacks.finite import NonFiniteLossError
    from gen_lightning.data.sources import DataSourceError
    from gen_lightning.run.checkpoint import CheckpointError
    from gen_lightning.run_dir import RunDirError, RunDirLocked

    return (
        CheckpointError, DataSourceError, RunDirError, RunDirLocked, NonFiniteLossError, MisconfigurationException,
        ValueError, OSError, HydraException, OmegaConfBaseException,
    )  # fmt: skip


HINTS = ("Set the environment variable HYDRA_FULL_ERROR", "full_key:", "object_type=")


def one_line(err: BaseException | str) -> str:
    """A user error as one message: Hydra's and OmegaConf's multi-line texts folded, their debugging hints dropped."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip() and not line.strip().startswith(HINTS)]
    return "; ".join(lines) or type(err).__name__


def _fit_task(cfg) -> float | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from lightning.pytorch.utilities import rank_zero_only
    from omegaconf import open_dict

    from gen_lightning.callbacks.checkpointing import RunInterrupted
    from gen_lightning.commands import search
    from gen_lightning.run import declared, train
    from gen_lightning.run.run_log import run_log
    from gen_lightning.run_dir import RunDir

    hc = HydraConfig.get()
    declared.declare_config_dirs(p.path for p in hc.runtime.config_sources if p.provider == "command-line")
    overrides = list(hc.overrides.task)
    if hc.mode == RunMode.MULTIRUN and not any(o.startswith("run_dir=") for o in overrides):
        with open_dict(cfg):
            cfg.run_dir = hc.runtime.output_dir  # one directory per job of the sweep
    trial = None
    try:
        trial = search.SearchTrial.begin(cfg, hc)  # None unless a job of -m hparams_search=NAME
        with run_log(RunDir(cfg.run_dir).log):
            summary = train.fit(cfg, overrides=overrides)
    except RunInterrupted as err:
        if trial is not None:
            trial.end(cfg, None, err)
        print(f"gen-lightning fit: {err}", file=sys.stderr)
        raise SystemExit(err.exit_code) from None
    except Exception as err:
        if trial is not None:
            trial.end(cfg, None, err)
        if not isinstance(err, _user_errors()) or os.environ.get("GEN_LIGHTNING_DEBUG") or hc.mode == RunMode.MULTIRUN:
            raise
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            from gen_lightning.run_dir import resumable_state

            err = f"{err}: the disk is full (or a file-size limit was reached). {resumable_state(cfg.run_dir)}"
        raise SystemExit(f"gen-lightning fit: {one_line(err)}") from None
    if rank_zero_only.rank == 0:  # one message per run, not one per DDP process
        print(finished_message(summary, RunDir(cfg.run_dir)))
    # The objective, for Hydra's sweepers (Optuna: gen-lightning fit -m hparams_search=NAME).
    return trial.end(cfg, summary) if trial is not None else search.objective(summary)


def finished_message(summary: dict, layout) -> str:
    """What ``fit`` prints at its end: the run folder, the final metrics, and where the checkpoints, the metrics
    file, the log and the latest samples are (only files that exist)."""
    status = "finished" if summary.get("status", "completed") == "completed" else summary["status"]
    lines = [f"run {status} in {summary['train_time_s']:.1f} s (step {summary.get('global_step', '?')}): {layout.path}"]
    if summary.get("final"):
        lines.append("  " + ", ".join(f"{k}={v:.4g}" for k, v in sorted(summary["final"].items())))
    by = f" (by {summary['monitor']})" if summary.get("monitor") else ""
    files = [("last checkpoint", layout.last, " (resume, sample, evaluate)"), ("best checkpoint", layout.best, by),
             ("metrics", layout.metrics, ""), ("log", layout.log, "")]  # fmt: skip
    files += [(f"{name} grid" if path.suffix == ".png" else name, path, "") for name, path in
              sorted(layout.latest_samples().items())]  # fmt: skip
    shown = [(name, f"{path}{note}") for name, path, note in files if path.is_file()]
    width = max([0, *(len(name) for name, _ in shown)]) + 1
    return "\n".join([*lines, *(f"  {name + ':':<{width}} {text}" for name, text in shown)])


def preflight(overrides: list[str]) -> list[str]:
    """Everything that can refuse a fit, before Hydra creates the run directory or writes into it (a refused
    command writes nothing): the run is prepared here (``run/prepare.py``: config, task, resume, data module,
    model, lock) and kept for ``train.fit`` in this process.

    Returns the overrides for Hydra: on resume, ``key=value`` may name keys the default composition lacks (the
    run's own groups are not composed by default), and Hydra's records go to a subfolder of ``.hydra`` so the
    run's original ones stay."""
    from gen_lightning.config import compose
    from gen_lightning.run import prepare
    from gen_lightning.run.resume_policy import GROUPS

    resume = any(o.lstrip("+") in ("resume=true", "resume=True") for o in overrides)
    if resume:
        overrides = [
            o if o.startswith(("+", "~", "hydra")) or o.split("=", 1)[0] in (*GROUPS, "run_dir", "resume") else f"++{o}"
            for o in overrides
        ]
    prepare.prepare(compose(overrides), overrides, keep=True)
    if resume:
        overrides = [*overrides, f"hydra.output_subdir=.hydra/resume-{default_run_dir().rsplit('/', 1)[-1]}"]
    return overrides


def quiet_library_noise() -> None:
    """Keep out of the terminal what a user cannot act on: Lightning's advertisement for its cloud logger, a
    deprecation inside Lightning's own code (both reach every run), alembic's set-up lines (a search). Warnings a
    user can act on stay."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")

    class NoTips(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return "Tip: For seamless cloud logging" not in record.getMessage()

    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(NoTips())
    # Optuna imports alembic, whose plugin set-up logs at INFO into the search's terminal.
    logging.getLogger("alembic").setLevel(logging.WARNING)


def default_run_dir() -> str:
    """``runs/<date>/<time>``, the run_dir conf/config.yaml gives a run that names none."""
    from datetime import datetime

    return datetime.now().strftime("runs/%Y-%m-%d/%H-%M-%S-%f")


def fit_command(overrides: list[str]) -> None:
    import importlib.util

    import hydra

    from gen_lightning.commands.search import register_resolvers
    from gen_lightning.config import config_dir, register_experiments

    register_experiments()
    register_resolvers()
    quiet_library_noise()
    multirun = any(o in ("-m", "--multirun") for o in overrides)
    if any(o.split("=", 1)[0].lstrip("+") == "hparams_search" for o in overrides):
        if not multirun:
            raise SystemExit("gen-lightning fit: hparams_search=NAME is a search of many runs: add -m (--multirun)")
        name = next(o for o in overrides if o.split("=", 1)[0].lstrip("+") == "hparams_search").split("=", 1)[1]
        known = sorted(p.stem for p in (config_dir() / "hparams_search").glob("*.yaml"))
        if name not in known:
            raise SystemExit(f"gen-lightning fit: unknown hparams_search={name}; choose from {', '.join(known)}")
        if importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is None:
            raise SystemExit(
                "gen-lightning fit: hparams_search needs Hydra's Optuna sweeper: pip install 'gen-lightning[sweep]'"
            )
    named = any(o.startswith(("run_dir=", "+run_dir=", "++run_dir=")) for o in overrides)
    if not multirun and not named and "--hydra-help" not in overrides:  # Hydra's help composes no run config
        # The default run_dir holds ${now:...}: resolved here once, so that the DDP children (which re-run this
        # command line) write into the same directory instead of resolving the time again.
        overrides = [*overrides, f"run_dir={default_run_dir()}"]
    if not multirun and not any(o.startswith("-") for o in overrides) and os.environ.get("LOCAL_RANK") in (None, "0"):
        try:
            overrides = preflight(overrides)
        except _user_errors() as err:
            if os.environ.get("GEN_LIGHTNING_DEBUG"):
                raise
            raise SystemExit(f"gen-lightning fit: {one_line(err)}") from None
    rank = os.environ.get("RANK", "0")
    if rank != "0":  # a process of another node under torchrun/SLURM: Hydra's record of it goes beside rank 0's
        kept = [o for o in overrides if not o.startswith("hydra.output_subdir=")]
        overrides = [*kept, f"hydra.output_subdir=.hydra/rank-{rank}"]
    # Hydra reads sys.argv; Lightning's DDP launcher re-runs sys.argv in each child process, where main()
    # recognises it by LOCAL_RANK and routes it back here.
    sys.argv = [sys.argv[0], *overrides]
    hydra.main(config_path=str(config_dir()), config_name="config", version_base="1.3")(_fit_task)()


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in COMMANDS and os.environ.get("LOCAL_RANK") not in (None, "0"):
        argv = ["fit", *argv]  # a DDP child process started by Lightning with the parent's overrides
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        raise SystemExit(f"gen-lightning: unknown command '{command}'\n\n{USAGE}")
    if command == "fit":
        return fit_command(rest)
    try:
        if command == "sample":
            from gen_lightning.commands.sample import sample_command
            from gen_lightning.config import parse_kv

            options, _ = parse_kv(rest)
            if "ckpt" not in options:
                raise ValueError("usage: gen-lightning sample ckpt=PATH [n=64] [out=FILE] [input=PATH | source=TEXT]")
            sample_command(**options)
        elif command == "evaluate":
            from gen_lightning.commands.evaluate import evaluate_command

            evaluate_command(rest)
        elif command == "export":
            from gen_lightning.commands.export import export_command

            export_command(rest)
        elif command == "study":
            from gen_lightning.studies.command import study_command

            study_command(rest)
        else:
            from gen_lightning.studies.report.command import report_command

            report_command(rest)
    except _user_errors() as err:
        if os.environ.get("GEN_LIGHTNING_DEBUG"):
            raise
        raise SystemExit(f"gen-lightning {command}: {one_line(err)}") from None


if __name__ == "__main__":
    main()
