"""dpmia_utils: membership inference against differentially private genomic models.

Modules, in the order data flows (README's "Module map" says what each one holds):

Science (a run's numbers depend on these; editing them re-runs the grid)
    constants, seeds, jsonio, paths   facts typed once, the seed scheme, atomic files, folders
    data/        locate, sources, genotypes, phenotypes, cross, traits, cache, synthetic
    splits       target/shadow halves, CV folds, shadow in/out
    models       the Lasso and the authors' CNN
    training/    config, losses, sampling, noise, dpsgd, engines/ (registry, base,
                 reference, fast), loop, checkpoints, result, cv, tf_privacy, selection
    lasso_reference  the converged L1 solution (liblinear; no TensorFlow)
    accounting/  accountants (RDP, PLD), classic (the paper's conversion), calibration
    attacks/     scores, shadow, loss, lira, protocol (the one orchestrator)
    metrics/     roc, empirical_epsilon, intervals, summary
    exposure     per-individual risk and genotype outlierness
    curves       privacy/utility fits and the turning point
    stages/      params (the run-parameter schema), data_prep, target, attack, artifacts,
                 resources: what each notebook calls

Machinery (editing these, or this map, never re-runs anything)
    pipeline/    profiles, plan, codeversion, execute, cluster, grid, store, summary, estimate,
                 cost
    publish/     tables, quotes, pages, plots, figure2, chapters, checks, selection_bias,
                 search_cost, book, browser_check, spotcheck, publication
    devtools/    bench, run_overhead, lira_references
    cli          python -m dpmia_utils run | book | publish | bench
"""

import os

# TensorFlow's C++ start-up chatter (CUDA probes, CPU feature notes) would otherwise fill
# every executed notebook; warnings and errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
