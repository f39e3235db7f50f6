"""Real-network training experiments (torch): datasets, models, optimisers, the training loop and the
``adabayes train`` / ``adabayes table`` / ``adabayes fig3-network`` subcommands.

Modules, one job each:

``datasets``     MNIST-1D (generated offline), scikit-learn digits, CIFAR-10/100 from local pickles
``synthetic``    random CIFAR-format folders for smoke runs and benchmarks (the real loader reads them)
``augment``      CIFAR random crop (padding with standardised black) and horizontal flip, seeded
``models``       MLP, 1-D ResNet, small CNN, CIFAR ResNet-34 and DenseNet-121 (own compact implementations)
``optimizers``   SGD / Adam / AMSGrad / AdamW / AdaBayes / AdaBayesFP with the paper's hyperparameters, LR schedule
``loop``         the training loop: deterministic batching, evaluation, per-epoch logs, checkpoint and resume
``records``      run-directory files: history.json / history.csv and the atomically written checkpoint.pt
``train_cli``    ``adabayes train``
``table``        ``adabayes table``: optimiser x seed grid -> Table-1-style Markdown and curves
``fig3``         ``adabayes fig3-network``: σ²_post against η/√⟨g²⟩ recorded from a real network
``plots``        matplotlib (Agg) rendering of saved results
``registry``     the subcommands this package adds to ``adabayes`` (a plain dict, no imports)

torch is imported by the modules that need it, never by this package's ``__init__``.
"""
