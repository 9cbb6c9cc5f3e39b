"""The released models' epsilon describes the trainings that ran: their n and their steps."""

from __future__ import annotations

from types import SimpleNamespace

from dpmia_utils.accounting import compute_epsilon
from dpmia_utils.stages.params import resolve_parameters
from dpmia_utils.stages.target import plan_training, released_model_accounting


def test_released_epsilon_counts_the_steps_each_fold_really_took():
    # Shuffled batches of 16 on folds of 1,504 and 1,505: 94 and 95 steps per epoch, so 4,700
    # and 4,750 steps over 50 epochs, while the planned (nominal) count is ceil(50 n / 16).
    run = {
        "model": "lasso",
        "dp": True,
        "noise_multiplier": 0.8,
        "epochs": 50,
        "sampling": "shuffle",
    }
    params = resolve_parameters(run=run)[1]
    plan = plan_training(params, n_train=1504)
    folds = [SimpleNamespace(n_train=1504, steps=4700), SimpleNamespace(n_train=1505, steps=4750)]
    released = released_model_accounting(SimpleNamespace(train_results=folds), plan)
    for name, value in released["epsilon"].items():
        each = [
            compute_epsilon(f.n_train, 16, 50, 0.8, 1 / f.n_train, accountant=name, steps=f.steps)
            for f in folds
        ]
        assert value == max(each)
    assert released["worst_training"]["rdp"] == {"n": 1505, "steps": 4750}
    assert released["epsilon"]["rdp"] > plan.epsilon["rdp"]  # more steps than planned
