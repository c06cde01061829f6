"""Samplers by name, all seeded; each factory takes (seed, SearchConfig) and returns an optuna sampler.

The tuning playbook's order: explore quasi-randomly (qmc), then exploit (tpe, gp). grid visits each
point of the space once, conditional keys included (optuna's brute-force sampler walks the tree).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import optuna
from optuna.samplers import BaseSampler

from pretune.recipe import SearchConfig
from pretune.registry import Registry

samplers: Registry[Callable[[int, SearchConfig], BaseSampler]] = Registry("sampler")

# Samplers that cannot optimise several metrics at once.
SINGLE_OBJECTIVE = {"cmaes"}

@samplers.register("grid")
def _grid(seed: int, cfg: SearchConfig) -> BaseSampler:
    return optuna.samplers.BruteForceSampler(seed=seed)


@samplers.register("random")
def _random(seed: int, cfg: SearchConfig) -> BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed)


@samplers.register("qmc")
def _qmc(seed: int, cfg: SearchConfig) -> BaseSampler:
    # Scrambled Sobol: every worker seeded the same draws from one sequence, indexed by the storage.
    return optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=seed if cfg.seed is None else cfg.seed,
                                      warn_asynchronous_seeding=False, warn_independent_sampling=False)


@samplers.register("tpe")
def _tpe(seed: int, cfg: SearchConfig) -> BaseSampler:
    # multivariate + group: models the keys jointly and copes with conditional (`when`) keys;
    # constant_liar keeps parallel workers from sampling the same point.
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=cfg.startup_trials, multivariate=True,
                                      group=True, constant_liar=True)


@samplers.register("gp")
def _gp(seed: int, cfg: SearchConfig) -> BaseSampler:
    return optuna.samplers.GPSampler(seed=seed, n_startup_trials=cfg.startup_trials,
                                     warn_independent_sampling=False)


@samplers.register("cmaes")
def _cmaes(seed: int, cfg: SearchConfig) -> BaseSampler:
    return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=cfg.startup_trials,
                                        warn_independent_sampling=False)


@samplers.register("nsga2")
def _nsga2(seed: int, cfg: SearchConfig) -> BaseSampler:
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(50, cfg.trials // 3)))


def create_sampler(name_or_sampler: str | BaseSampler, seed: int, cfg: SearchConfig) -> BaseSampler:
    if isinstance(name_or_sampler, BaseSampler):
        return name_or_sampler
    factory = samplers.get(name_or_sampler)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # brute force, qmc, group
        return factory(seed, cfg)
