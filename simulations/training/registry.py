"""Subcommands of the ``adabayes`` command owned by :mod:`simulations.training` (a plain dict, no imports)."""

SUBCOMMANDS = {
    "train": ("simulations.training.train_cli", "train one network with one optimiser; per-epoch log and checkpoint"),
    "table": ("simulations.training.table", "optimiser x seed grid -> Table-1-style Markdown table and curves"),
    "fig3-network": ("simulations.training.fig3", "Fig. 3 from a real network: sigma2_post against eta/sqrt(<g2>)"),
}
