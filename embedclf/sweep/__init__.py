"""Encode once, try everything: a grid of heads and decisions fitted on the same cached embeddings.

``load_grid`` / ``default_grid`` say what to try (:mod:`.grid`), ``sweep_files`` runs it
(:mod:`.runner`: one encode, a fold loop per head in :mod:`.scoring`, records in :mod:`.results`)
and writes the leaderboard (:mod:`.leaderboard`) and the best model folder.
"""

from embedclf.sweep.grid import Configuration, Grid, HeadConfig, default_grid, load_grid, mlp_grid
from embedclf.sweep.runner import SweepSettings, sweep_files

__all__ = ["Configuration", "Grid", "HeadConfig", "SweepSettings", "default_grid", "load_grid", "mlp_grid",
           "sweep_files"]
