"""Every Optuna sampler a spec can name survives Ray's pickling and continues where it stopped.

Regression: Optuna 5.1 put a ``threading.Lock`` into its genetic samplers; Ray pickles the
searcher (``tuner.pkl``, ``OptunaSearch.save``), so an NSGA-II study died in ``tune.Tuner``.
The end-to-end NSGA-II study is ``tests/sweep/test_sweep_e2e.py::test_multi_objective_optuna_search``.
"""
from __future__ import annotations

import pickle
import re
from pathlib import Path

import optuna
import pytest
import ray.cloudpickle as cloudpickle

from microtune.sweep import samplers
from microtune.sweep.spec import SAMPLERS

LOCK = Path(__file__).resolve().parents[2] / "requirements" / "lock.txt"

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _objective(trial: optuna.Trial) -> tuple[float, float]:
    x = trial.suggest_float("x", 0.0, 1.0)
    y = trial.suggest_categorical("y", ["bg", "bgc", "bgcfnc"])
    return (x - 0.3) ** 2 + len(y), -x


def test_the_spec_and_the_factory_offer_the_same_samplers():
    assert set(SAMPLERS) == set(samplers.SAMPLERS)


@pytest.mark.parametrize("name", sorted(samplers.SAMPLERS))
@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps], ids=["pickle", "cloudpickle"])
def test_sampler_pickles_and_continues_the_same_sequence(name, dumps):
    sampler = samplers.make_sampler(name, seed=3)
    study = optuna.create_study(directions=["minimize", "maximize"], sampler=sampler)
    study.optimize(_objective, n_trials=12)  # NSGA-II's population is 50: still generation 0 here

    # OptunaSearch.save pickles the sampler and the study together; so do we.
    clone_sampler, clone_study = pickle.loads(dumps((sampler, study)))
    assert type(clone_sampler) is type(sampler)
    for key, value in vars(sampler).items():  # each lock came back as a new, working lock
        if isinstance(value, samplers._LOCK_TYPES):
            clone_lock = getattr(clone_sampler, key)
            assert isinstance(clone_lock, type(value)) and clone_lock is not value
            with clone_lock:
                pass

    clone_study.sampler = clone_sampler
    study.optimize(_objective, n_trials=4)
    clone_study.optimize(_objective, n_trials=4)
    assert [t.params for t in study.trials[-4:]] == [t.params for t in clone_study.trials[-4:]]


def test_nsga2_keeps_optunas_generation_keys():
    """Studies written through microtune read like plain Optuna ones (optuna-dashboard, load_study)."""
    assert samplers.NSGAIISampler._get_generation_key() == optuna.samplers.NSGAIISampler._get_generation_key()


def test_nsga2_after_a_generation_still_pickles():
    sampler = samplers.make_sampler("nsga2", seed=0)
    sampler.population_size = 4
    study = optuna.create_study(directions=["minimize", "maximize"], sampler=sampler)
    study.optimize(_objective, n_trials=10)  # two generations done, the third started
    generations = {t.system_attrs.get("NSGAIISampler:generation") for t in study.trials}
    assert {0, 1, 2} <= generations
    clone = cloudpickle.loads(cloudpickle.dumps(sampler))
    study.sampler = clone
    study.optimize(_objective, n_trials=2)
    assert len(study.trials) == 12


def test_locked_optuna_has_the_lock_that_broke_pickling():
    """Pin that the suite runs against an Optuna whose GA sampler holds a lock (5.1 and later).

    If the lock went back to 5.0, the regression above would pass vacuously.
    """
    pinned = re.search(r"^optuna==(\d+)\.(\d+)\.(\d+)$", LOCK.read_text(), re.M)
    assert pinned, f"{LOCK} pins no optuna version"
    assert tuple(map(int, pinned.groups())) >= (5, 1, 0)
    if optuna.__version__ != ".".join(pinned.groups()):
        pytest.skip(f"optuna {optuna.__version__} is not the locked one (make test-latest)")
    plain = optuna.samplers.NSGAIISampler(seed=0)
    assert any(isinstance(v, samplers._LOCK_TYPES) for v in vars(plain).values()), (
        f"optuna {optuna.__version__}: NSGAIISampler holds no lock; the pickling test exercises nothing")
    with pytest.raises(TypeError, match="lock"):
        cloudpickle.dumps(plain)
