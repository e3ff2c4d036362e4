"""analysis/importance.py against a real MLflow store with studies whose effects are known."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis import importance, report
from tests.analysis import fake_studies as fake
from tests.analysis.test_scripts import assert_figure, run_script

# best FID = 10 + 20·[augpipe == none] + 2·(index of r_t) + seed offset: an additive model whose
# main effects have variances 100 (augpipe), 8/3 (r_t over 0.4, 0.6, 0.8) and 0.25 (seeds 0, 1:
# offsets -1 and 0), so the exact variance shares are 0.968, 0.026 and 0.002.
RT = (0.4, 0.6, 0.8)


@pytest.fixture(scope="module")
def known(store) -> str:
    trials = [(f"{a}_{t}_s{s}", {"augpipe": a, "ada_target": t, "seed": s},
               10.0 + 20.0 * (a == "none") + 2.0 * RT.index(t) + fake.SEED_OFFSET[s], None, 5, {}, {})
              for a in ("bg", "none") for t in RT for s in (0, 1)]
    fake.log_study(store, "importance", trials)
    return "importance"


def test_importance_ranks_axes_by_the_variance_they_explain(store, known, tmp_path):
    assert run_script(importance, store, known, tmp_path) == 0
    assert_figure(tmp_path, "importance")
    table = pd.read_csv(tmp_path / "importance.csv")
    assert list(table["parameter"]) == ["augpipe", "ada_target", "seed"]   # ranked
    shares = dict(zip(table["parameter"], table["importance best_fid"]))
    assert shares["augpipe"] > 0.85 and shares["seed"] < 0.05             # exact: 0.968 and 0.002
    assert table["importance best_fid"].sum() == pytest.approx(1.0)
    assert set(table["trials best_fid"]) == {12}
    assert "best_recall" not in " ".join(table.columns)                    # the study logged no recall


def test_dataset_size_is_what_matters_in_the_size_study(store, tmp_path):
    # best FID falls by 14 per decade of size over 10 … 3000 images; seeds move it by at most 2.5
    assert run_script(importance, store, "dataset_size", tmp_path) == 0
    table = pd.read_csv(tmp_path / "importance.csv").set_index("parameter")
    assert list(table.index) == ["size", "seed"]
    assert table.loc["size", "importance best_fid"] > 0.9 and table.loc["size", "importance best_recall"] > 0.9


def test_ped_anova_evaluator_and_too_few_trials(store, known, tmp_path, capsys):
    assert run_script(importance, store, known, tmp_path, "--evaluator", "ped-anova") == 0
    assert pd.read_csv(tmp_path / "importance.csv")["importance best_fid"].sum() == pytest.approx(1.0)
    capsys.readouterr()
    assert run_script(importance, store, "mixed", tmp_path, "--detector", fake.STANDARD) == 1
    assert capsys.readouterr().err == "error: no axis of experiment 'mixed' varies; there is no importance to rank.\n"
    fake.log_study(store, "importance_two", [(a, {"augpipe": a, "seed": 0}, 10.0 + i, None, 5, {}, {})
                                             for i, a in enumerate(("bg", "none"))])
    assert run_script(importance, store, "importance_two", tmp_path) == 1
    assert "has 2 trial(s) with a 'fid' value; importance needs at least 3" in capsys.readouterr().err


def test_report_includes_importance(store, tmp_path):
    report.make_from_uri(store, "pareto", tmp_path)
    index = (tmp_path / "index.md").read_text()
    assert "Hyperparameter importance (fANOVA)" in index and "importance.png" in index


def test_a_target_every_trial_shares_is_not_ranked(store, tmp_path, capsys):
    trials = [(f"{a}_s{s}", {"augpipe": a, "seed": s}, 12.0, 0.2 + 0.1 * i + 0.01 * s, 5, {}, {})
              for i, a in enumerate(("bg", "none")) for s in (0, 1)]
    fake.log_study(store, "importance_flat", trials)
    assert run_script(importance, store, "importance_flat", tmp_path) == 0
    table = pd.read_csv(tmp_path / "importance.csv")
    assert "importance best_fid" not in table and list(table["parameter"]) == ["augpipe", "seed"]
    assert "reached the same best fid (12)" in capsys.readouterr().err
    fake.log_study(store, "importance_flat2", [(n, p, f, None, b, t, e) for n, p, f, _r, b, t, e in trials])
    assert run_script(importance, store, "importance_flat2", tmp_path) == 1
    assert "no fid or recall values that differ between successful trials" in capsys.readouterr().err


def test_an_axis_fixed_by_another_is_not_ranked_twice():
    """ada_target is empty exactly where augpipe is none (augpipe none crossed with a study-wide
    target): the two cannot be separated, so only augpipe is ranked; a target that varies under bg
    is an axis of its own."""
    from analysis.importance import _without_derived

    confounded = pd.DataFrame({"augpipe": ["none", "none", "bg", "bg"], "ada_target": [None, None, 0.6, 0.6],
                               "seed": [0, 1, 0, 1]})
    assert _without_derived(confounded, ["ada_target", "augpipe", "seed"]) == ["augpipe", "seed"]
    crossed = pd.DataFrame({"augpipe": ["none", "none", "bg", "bg"], "ada_target": [None, None, 0.6, 0.9],
                            "seed": [0, 0, 0, 0]})
    assert _without_derived(crossed, ["augpipe", "ada_target"]) == ["augpipe", "ada_target"]
