"""HPTL end to end and the baselines on tiny synthetic 3-phase data (CPU-sized)."""

from __future__ import annotations

import pytest
import torch

from microtune.errors import MicrotuneError
from microtune.seg.run import SegOptions, load_split, run_segmentation
from microtune.tracking import schema

from .conftest import majority_rate, write_synthetic

# CPU-sized networks for the baselines on the 64x64 fixture: width 1/16 (VGG-19 conv channels
# 4-8-16-32-32, fc 256), 48x48 crops, Adam lr 2e-3, 100-step texture source.
TINY = dict(epochs=3, batch=8, crop=48, lr=2e-3, width=1 / 16, samples_per_epoch=128,
            source="textures", source_steps=100)

# CPU-sized HPTL (VGG-19 → FCN-32s → FCN-16s → FCN-8s, paper depths 2,8,9). It differs from the
# paper's sec. 3.3.4 in: width 1/16; 96x96 crops (paper 224) in batches of 8 (paper 16); Adam lr
# 2e-3 for 3 x 32 steps per stage (paper 1e-4 for 12k iterations); batch norm after every conv
# (VGG-19-BN, not in the paper: without it the plain 16-conv stack of 4-32 channels often stays at
# the training prior through stages 2-3 and only stage 4 escapes); a 100-step texture source
# instead of ImageNet. Dropout stays at the paper's 0.5 (0 was worse here).
HPTL_CPU = dict(epochs=3, batch=8, crop=96, lr=2e-3, width=1 / 16, samples_per_epoch=256, batch_norm=True,
                source="textures", source_steps=100)


@pytest.fixture(scope="module")
def synth3_256(tmp_path_factory):
    """The ``synth3`` specimens rendered at 256x256 (phase lengths scale with the resolution)."""
    return write_synthetic(tmp_path_factory.mktemp("seg256") / "synth3_256", resolution=256)


def test_hptl_beats_majority_class_rate(synth3_256, tmp_path):
    # Why 256x256 and not the 64x64 fixture: an FCN-8s scores at stride 8 (finer detail comes only
    # from the learned up-sampling), and at 64x64 the phase regions are 4-10 px. Even the true
    # masks, averaged over 8x8 blocks and bilinearly up-sampled, score only 0.738 on that test
    # specimen (0.824 at 128x128, 0.891 at 256x256), below majority + 0.15 = 0.756: no FCN-8s
    # could pass this test at 64x64 (HPTL reached 0.59-0.71 there). The majority rate is the same
    # at every resolution.
    options = SegOptions(data=str(synth3_256), method="hptl", depths="2,8,9", cache_dir=str(tmp_path), **HPTL_CPU)
    _, (_, test_masks), _ = load_split(options)
    majority = majority_rate(test_masks)
    reports = []
    final = run_segmentation(options, report=lambda step, m: reports.append((step, m)))
    # Measured here (2 CPU cores): majority-class rate of the test specimen 0.606 (ferrite; the
    # training split is 58 % martensite, so predicting the training prior scores 0.362).
    # HPTL pixel accuracy 0.878 / 0.883 / 0.883 with seeds 0 / 1 / 2 (0.878 / 0.877 / 0.874 on one
    # thread; 0.875 / 0.883 with seeds 3 / 4), 13-16 s; multi-level Otsu reaches 0.948 on the same
    # split. With score_fr randomly initialised (before it was zeroed as in FCN) the FCN-32s stage
    # ended at 0.36-0.51 instead of 0.68-0.71, and HPTL at 0.855 / 0.880 / 0.875.
    assert majority == pytest.approx(0.606, abs=0.01)
    assert final[schema.SEG_ACC] >= 0.80, (final[schema.SEG_ACC], majority)
    assert final[schema.SEG_ACC] >= majority + 0.15, (final[schema.SEG_ACC], majority)
    assert [m["seg_stage"] for _, m in reports] == [2] * 3 + [3] * 3 + [4] * 3
    steps = [s for s, _ in reports]
    assert steps == sorted(steps) and steps[-1] == 9 * 256
    for key in (*schema.SEG_METRICS, "seg_loss_gap", "seg_iou_ferrite", "seg_iou_martensite", "seg_iou_inclusion"):
        assert key in final
    assert final["seg_loss_gap"] == pytest.approx(final[schema.SEG_TEST_LOSS] - final[schema.SEG_TRAIN_LOSS])


# DeepLabV3+ beats chance in tests/seg/test_deeplab.py (its own CPU-sized settings: ResNet-18 encoder).
@pytest.mark.parametrize("method", ["otsu", "svm", "fcn8s-scratch"])
def test_baselines_beat_chance(synth3, method):
    # Networks from random init get twice HPTL's per-network budget (6 epochs; no dropout):
    # with 3 they still predict the training prior (0.36 on this test specimen).
    options = SegOptions(data=str(synth3), method=method, svm_samples=1500, **{**TINY, "epochs": 6, "dropout": 0.0})
    final = run_segmentation(options)
    chance = 1 / 3  # three classes
    assert final[schema.SEG_ACC] > chance + 0.15, final
    assert final[schema.SEG_INFER_MS] > 0


@pytest.mark.parametrize("field, value, option", [
    ("method", "unet", "--method"), ("depths", "2,9,9", "--depths"), ("width", 2.0, "--width"),
    ("split", "random", "--split"), ("crop", 16, "--crop"), ("l2_mode", "sp", "--l2-mode"),
    ("device", "gpu0", "--device"),
])
def test_bad_options_name_the_option(synth3, field, value, option):
    with pytest.raises(MicrotuneError, match=option):
        run_segmentation(SegOptions(data=str(synth3), **{field: value}))


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_cuda_without_a_gpu_is_refused_before_any_work(synth3):
    with pytest.raises(MicrotuneError, match="--device cuda was requested but no CUDA device is available"):
        run_segmentation(SegOptions(data=str(synth3), method="fcn8s-scratch", device="cuda"))
