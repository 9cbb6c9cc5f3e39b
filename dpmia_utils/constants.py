"""The study's fixed facts, typed once: the real data's sizes, the paper's published numbers,
and the names of the attacks. Everything else imports them from here."""

from __future__ import annotations

# The yeast cross (Bloom et al. 2013), as the files hold it.
YEAST_SEGREGANTS = 4390
YEAST_VARIANTS = 28220
# Segregants with a measured value of the as-described trait (copper sulfate): the largest
# dataset the real-data profiles can hand to the pipeline.
YEAST_SEGREGANTS_MEASURED = 4276
# One 5-fold training fold of the as-coded target half (Diamide, > 0, balanced): the paper's
# n, whose delta = 1/n it reports.
PAPER_TRAINING_ROWS = 1504
# The trait as the authors' scripts read and prepared it (``iloc[:, 2]`` = 1_Diamide_1,
# binarized at > 0, classes balanced): the data block of the as-coded profiles and tools.
AS_CODED_DATA: dict[str, object] = {
    "source": "yeast", "trait": "Diamide", "binarize": "threshold", "threshold": 0.0,
    "balance": True,
}  # fmt: skip
PAPER_DELTA = 0.00066489

# Chen, Wang & Shi (PSB 2021), Table 1: models without DP (5-fold CV; 5 attack repeats).
PAPER_TABLE1: tuple[dict[str, float | str], ...] = (
    {"model": "lasso", "l1": 0.0, "target_accuracy": 0.7910, "target_std": 0.0123,
     "attack_accuracy": 0.5728, "attack_std": 0.0071},
    {"model": "lasso", "l1": 0.001352, "target_accuracy": 0.7963, "target_std": 0.0157,
     "attack_accuracy": 0.5631, "attack_std": 0.0042},
    {"model": "cnn", "l1": 0.0, "target_accuracy": 0.7894, "target_std": 0.0199,
     "attack_accuracy": 0.5726, "attack_std": 0.0059},
    {"model": "cnn", "l1": 0.001352, "target_accuracy": 0.7936, "target_std": 0.0225,
     "attack_accuracy": 0.5628, "attack_std": 0.0050},
)  # fmt: skip

# The paper's epsilon table: (epochs, batch size, noise multiplier) -> epsilon, for the four
# settings whose value the paper prints to six digits (rdp-classic, n = 1504, delta above).
PAPER_EPSILONS: dict[tuple[int, int, float], float] = {
    (50, 8, 1.2): 2.160180,
    (100, 16, 0.8): 10.039137,
    (50, 16, 0.6): 15.332044,
    (100, 16, 0.4): 98.002301,
}

# The attacks a run can ask for, in the order tables show them.
ATTACK_NAMES: tuple[str, ...] = ("shadow", "loss", "lira")
# attack.reference_models value making LiRA's reference models the shadow attack's own: one
# per repeat, trained with the target's recipe on a random half of the adversary's pool, so
# distributed as LiRA's offline reference models are (none ever saw a candidate).
SHADOW_REFERENCES = "shadow"

# Run parameters a `search` may vary (those of the authors' grids): the parameter schema
# checks them without loading the training code.
SEARCHABLE: tuple[str, ...] = (
    "learning_rate",
    "epochs",
    "batch_size",
    "microbatch_fraction",
    "l2_clip",
    "n_kernels",
    "kernel_size",
    "dropout",
)
