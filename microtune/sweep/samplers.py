"""The Optuna samplers a study can name (``search.sampler``), made safe for Ray to pickle.

Ray Tune pickles the search algorithm twice: ``Tuner(...)`` writes its whole state, the
``TuneConfig`` and so the ``OptunaSearch`` and its sampler, to ``tuner.pkl`` (for
``Tuner.restore``), and every experiment checkpoint stores ``OptunaSearch.save()``, a pickle of
the sampler and the Optuna study. Since Optuna 5.1 the genetic samplers (``NSGAIISampler``,
``NSGAIIISampler``, through ``optuna.samplers._ga.BaseGASampler``) keep a ``threading.Lock`` in
the instance (``_thread_lock``, guarding a per-generation cache), and a lock cannot be pickled:
``TypeError: cannot pickle '_thread.lock' object`` before the first trial starts.

A lock holds no state worth keeping across processes, so the classes below pickle the sampler
without its locks and give the copy fresh ones. Everything else (the random state, the generation
cache, the strategies) travels unchanged, so a restored sampler continues the same sequence.

The subclasses keep Optuna's class names on purpose: ``BaseGASampler.__init_subclass__`` derives
the study's system-attribute keys from the class name (``NSGAIISampler:generation``), so studies
written through microtune read the same as ones written by plain Optuna (optuna-dashboard, a
later ``optuna.load_study`` with Optuna's own sampler).
"""
from __future__ import annotations

import threading
from typing import Any

import optuna

_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))


class _FreshLocksOnUnpickle:
    """Pickle without lock attributes; recreate each as a new lock of the same kind."""

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        locks = {}
        for key, value in self.__dict__.items():
            if isinstance(value, _LOCK_TYPES):
                locks[key] = "rlock" if isinstance(value, _LOCK_TYPES[1]) else "lock"
                del state[key]
        state["_microtune_locks"] = locks
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        locks = state.pop("_microtune_locks", {})
        self.__dict__.update(state)
        for key, kind in locks.items():
            setattr(self, key, threading.RLock() if kind == "rlock" else threading.Lock())


class TPESampler(_FreshLocksOnUnpickle, optuna.samplers.TPESampler):
    """Optuna's TPE sampler (single or multi-objective), picklable with its locks, if any."""


class NSGAIISampler(_FreshLocksOnUnpickle, optuna.samplers.NSGAIISampler):
    """Optuna's NSGA-II sampler, picklable although Optuna >= 5.1 keeps a thread lock in it."""


#: ``search.sampler`` value -> sampler class (the spec's ``SAMPLERS`` lists the same names).
SAMPLERS: dict[str, type] = {"tpe": TPESampler, "nsga2": NSGAIISampler}


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    """The sampler a study names, seeded with the study's first seed."""
    return SAMPLERS[name](seed=seed)
