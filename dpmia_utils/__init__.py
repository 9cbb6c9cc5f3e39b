"""dpmia_utils: membership inference against differentially private genomic models.

Modules, in the order data flows: data, synthetic, splits, models, training, accounting,
attacks, metrics, study (the protocol the notebooks call), grid, store, runner, results,
curves, plots, book, cli.
"""

import os

# TensorFlow's C++ start-up chatter (CUDA probes, CPU feature notes) would otherwise fill
# every executed notebook; warnings and errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
