"""Callbacks shared by every family: exact resume, the non-finite loss guard, sample logging, run summary."""

from gen_lightning.callbacks.finite import FiniteLossGuard, NonFiniteLossError
from gen_lightning.callbacks.resume import ExactResume
from gen_lightning.callbacks.samples import SampleLogger
from gen_lightning.callbacks.summary import RunSummary

__all__ = ["ExactResume", "FiniteLossGuard", "NonFiniteLossError", "RunSummary", "SampleLogger"]
