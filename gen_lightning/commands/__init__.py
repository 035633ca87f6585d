"""The commands other than ``fit``'s Hydra application: ``sample``, ``evaluate``, the hyper-parameter search's
trial bookkeeping, and the input readers and output writers they share."""
