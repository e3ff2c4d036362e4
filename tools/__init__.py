"""Developer tooling of this checkout, not part of the installed package: ``tools/venv_lock.py``
(``make venv``), ``tools/cluster_check.py`` (``make cluster-check``, run from the repository root as
``python -m tools.cluster_check``) and ``tools/localcluster.py``, the throwaway multi-node Ray cluster
that tests/sweep/test_cluster.py and ``python -m benchmarks.sweep_overhead`` start. A package so that
those import ``tools.localcluster`` from the repository root without patching ``sys.path`` (pytest puts
the root on ``sys.path`` because tests/ is a package)."""
