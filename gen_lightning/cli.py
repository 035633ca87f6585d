"""The ``gen-lightning`` command: ``fit | sample | evaluate | study | report``.

``fit`` is a Hydra application (config groups, overrides, ``--multirun``); the other commands take
``key=value`` arguments. Errors a user can act on are printed as one message, without a traceback.
"""

from __future__ import annotations

import os
import sys

USAGE = """usage: gen-lightning COMMAND [key=value ...]

commands:
  fit       train a model: gen-lightning fit [model=vae data=digits trainer=cpu logger=wandb ...] [--multirun]
            resume:        gen-lightning fit run_dir=DIR resume=true
  sample    write samples: gen-lightning sample ckpt=PATH [n=64] [out=FILE.png] [mode=sample|reconstruct|...]
  evaluate  image metrics of a checkpoint: gen-lightning evaluate ckpt=PATH [metrics.num_samples=...]
  study     run a comparison: gen-lightning study experiments/NAME.yaml [study_dir=DIR] [launcher=inprocess|hydra]
            [report=false] [dry_run=true] [key=value ...]; the same command again resumes it
  report    tables and plots of a study: gen-lightning report experiments/NAME.yaml (or a study directory)

`gen-lightning fit --help` shows the config groups and their options.
"""

COMMANDS = ("fit", "sample", "evaluate", "study", "report")


def _fit_task(cfg) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from lightning.pytorch.utilities import rank_zero_only
    from omegaconf import open_dict

    from gen_lightning import train

    hc = HydraConfig.get()
    overrides = list(hc.overrides.task)
    if hc.mode == RunMode.MULTIRUN and not any(o.startswith("run_dir=") for o in overrides):
        with open_dict(cfg):
            cfg.run_dir = hc.runtime.output_dir  # one directory per job of the sweep
    if cfg.resume:
        cfg = train.resolve_for_resume(cfg, overrides)
    summary = train.fit(cfg)
    if rank_zero_only.rank == 0:  # one message per run, not one per DDP process
        final = ", ".join(f"{k}={v:.4g}" for k, v in sorted(summary["final"].items()))
        print(f"run finished in {summary['train_time_s']:.1f} s: {cfg.run_dir}\n  {final}")


def quiet_library_noise() -> None:
    """Keep out of the terminal what a user cannot act on: Lightning's advertisement for its cloud logger and a
    deprecation inside Lightning's own code (both reach every run). Warnings a user can act on stay."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")

    class NoTips(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return "Tip: For seamless cloud logging" not in record.getMessage()

    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(NoTips())


def default_run_dir() -> str:
    """``runs/<date>/<time>``, the run_dir conf/config.yaml gives a run that names none."""
    from datetime import datetime

    return datetime.now().strftime("runs/%Y-%m-%d/%H-%M-%S-%f")


def fit_command(overrides: list[str]) -> None:
    import hydra

    from gen_lightning.config import config_dir, register_experiments

    register_experiments()
    quiet_library_noise()
    multirun = any(o in ("-m", "--multirun") for o in overrides)
    if not multirun and not any(o.startswith(("run_dir=", "+run_dir=", "++run_dir=")) for o in overrides):
        # The default run_dir holds ${now:...}: resolved here once, so that the DDP children (which re-run this
        # command line) write into the same directory instead of resolving the time again.
        overrides = [*overrides, f"run_dir={default_run_dir()}"]
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
    from gen_lightning.checkpoint import CheckpointError
    from gen_lightning.data.sources import DataSourceError

    try:
        if command == "sample":
            from gen_lightning.config import parse_kv
            from gen_lightning.sample import sample_command

            options, _ = parse_kv(rest)
            if "ckpt" not in options:
                raise ValueError("usage: gen-lightning sample ckpt=PATH [n=64] [out=FILE] [input=PATH | source=TEXT]")
            sample_command(**options)
        elif command == "evaluate":
            from gen_lightning.evaluate import evaluate_command

            evaluate_command(rest)
        elif command == "study":
            from gen_lightning.study import study_command

            study_command(rest)
        else:
            from gen_lightning.report import report_command

            report_command(rest)
    except (CheckpointError, DataSourceError, ValueError, FileNotFoundError) as err:
        raise SystemExit(f"gen-lightning {command}: {err}") from None


if __name__ == "__main__":
    main()
