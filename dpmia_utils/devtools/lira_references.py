"""How many LiRA reference models are enough? The spread of offline LiRA's AUC and TPR at 1% FPR
with 2, 4 and 8 reference models, on the real (as-coded) data.

For one configuration: train the 5 CV fold models once, as the protocol does; then for each of
three seeds train 8 reference models on random halves of the shadow half (the protocol's
recipe) and score offline LiRA with the first K of them, K in {2, 4, 8}, over the protocol's 5
evaluation repeats. Every candidate is OUT of every reference model, so the first K of 8 are
distributed like a K-model plan. Usage (about 1 min for the Lasso, 15 min for the CNN on 2 cores):

    python -m dpmia_utils.devtools.lira_references lasso-nodp --out lira_lasso-nodp.json
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from dpmia_utils import seeds, stages
from dpmia_utils.attacks import (
    as_logits_fn,
    keras_train_fn,
    lira_offline_scores,
    lira_statistic,
    membership_evaluation_set,
    reference_model_plan,
    reference_statistics,
)
from dpmia_utils.constants import AS_CODED_DATA
from dpmia_utils.metrics import roc_auc, tpr_at_fpr

CNN = {"n_kernels": 8, "kernel_size": 5, "dropout": 0.25}
COMMON = {"l1": 0.0, "epochs": 50, "batch_size": 16, "sampling": "shuffle"}
CONFIGS = {
    "lasso-nodp": {"model": "lasso", "dp": False, "learning_rate": 0.001},
    "lasso-dp-0.6": {"model": "lasso", "dp": True, "noise_multiplier": 0.6, "learning_rate": 0.01},
    "cnn-nodp": {"model": "cnn", "dp": False, "learning_rate": 0.01, "epochs": 20, **CNN},
    "cnn-dp-0.6": {"model": "cnn", "dp": True, "noise_multiplier": 0.6, "learning_rate": 0.01,
                   "epochs": 20, **CNN},
}  # fmt: skip
SEEDS, KS, REPEATS = (0, 1, 2), (2, 4, 8), 5


def measure(name: str) -> dict:
    """Train the configuration's targets and 3 x 8 reference models; LiRA at each K."""
    data = dict(AS_CODED_DATA)
    blocks, params = stages.resolve_parameters(
        data=data, split={"folds": 5}, attack={}, run={**COMMON, **CONFIGS[name]}
    )
    dataset = stages.load_dataset(blocks["data"], progress=False)
    splits = stages.make_splits(dataset, blocks["split"])
    started = time.perf_counter()
    cv, plan, _ = stages.train_target(dataset, splits, params)
    train_seconds = time.perf_counter() - started
    X, y = dataset.features(), dataset.labels.astype(np.int64)
    column = {int(i): c for c, i in enumerate(splits.target)}
    repeat_seeds = seeds.generator(0, 7).integers(0, 2**31 - 1, size=REPEATS).tolist()
    evaluations = []
    for repeat, repeat_seed in enumerate(repeat_seeds):
        fold = repeat % len(cv.models)
        idx, is_member = membership_evaluation_set(*splits.folds[fold], seed=repeat_seed)
        phi = lira_statistic(as_logits_fn(cv.models[fold])(X[idx]), y[idx])
        evaluations.append(([column[int(i)] for i in idx], is_member, phi))
    rows, reference_seconds = [], 0.0
    for seed in SEEDS:
        started = time.perf_counter()
        phis = reference_statistics(
            keras_train_fn(plan.spec, plan.config),
            X,
            y,
            splits.shadow,
            reference_model_plan(splits.shadow.size, max(KS), seed=1000 + seed),
            seeds.derive_many(seed, max(KS), 77),
            splits.target,
        )
        reference_seconds += time.perf_counter() - started
        for k in KS:
            scores = [
                (lira_offline_scores(phi, phis[:k][:, cols])[0], is_member)
                for cols, is_member, phi in evaluations
            ]
            rows.append(
                {
                    "seed": seed,
                    "K": k,
                    "auc": float(np.mean([roc_auc(s, m) for s, m in scores])),
                    "tpr_at_1pct_fpr": float(np.mean([tpr_at_fpr(s, m, 0.01) for s, m in scores])),
                }
            )
            print(name, rows[-1], flush=True)
    return {
        "config": name,
        "params": params,
        "test_accuracy": float(np.mean(cv.test_accuracy)),
        "train_seconds": train_seconds,
        "reference_seconds_per_model": reference_seconds / (len(SEEDS) * max(KS)),
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: one configuration, results as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", choices=sorted(CONFIGS))
    parser.add_argument("--out", help="write the measurements here (JSON)")
    args = parser.parse_args(argv)
    result = measure(args.config)
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(result, handle, indent=1, default=str)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
