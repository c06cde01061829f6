"""Hyperparameter search on optuna: the recipe's `search` section, one `fit` per trial.

    study = pretune.search("examples/search.yaml", trials=20)
    study.best_trial, study.best_recipe, study.best_run, study.trials

The registries are `pretune.search.samplers.samplers` and `pretune.search.pruners.pruners`.
Kept light (names load on first use): `import pretune` must not pay for optuna.
"""

__all__ = ["Study", "search"]


def __getattr__(name: str):
    if name in __all__:
        from pretune.search import study

        return getattr(study, name)
    raise AttributeError(f"module 'pretune.search' has no attribute '{name}'")
