"""The report of a study, read from its files alone (no W&B server).

``collect`` reads the runs and computes the statistics (with ``frontier``: the quality/diversity curves of text
studies); ``plots`` draws the figures; ``markdown`` writes ``report.md``; ``wandb_run`` logs the comparison to W&B
through ``gen_lightning.tracking``; ``command`` writes them all (``gen-lightning report``). Nothing outside this
folder imports it except the study and report commands.
"""
