"""cfg presets (ADA App. D formulas, the issue's tiny) and option validation."""

from __future__ import annotations

import pytest

from microtune.errors import MicrotuneError
from microtune.gan.config import CFG_NAMES, TrainOptions, make_options


@pytest.mark.parametrize(
    ("resolution", "batch", "gamma", "ema", "base"),
    [  # StyleGAN2-ADA "auto", 1 GPU: batch = max(min(4096 // res, 32), 1), gamma = 2e-4 res²/batch, ema = batch·10/32
        (64, 32, 0.0002 * 64**2 / 32, 10.0, 16384),
        (256, 16, 0.0002 * 256**2 / 16, 5.0, 16384),
        (512, 8, 0.0002 * 512**2 / 8, 2.5, 32768),
        (1024, 4, 0.0002 * 1024**2 / 4, 1.25, 32768),
    ],
)
def test_auto_follows_the_ada_formulas(resolution, batch, gamma, ema, base):
    o = make_options(cfg="auto", resolution=resolution)
    assert (o.batch, o.channel_base, o.mapping_layers, o.ema_rampup) == (batch, base, 2, 0.05)
    assert o.gamma == pytest.approx(gamma) and o.ema_kimg == pytest.approx(ema)
    assert o.mbstd_group == min(batch, 4)
    assert o.lr_g == (0.002 if resolution >= 1024 else 0.0025)


def test_paper_presets():
    p256, p512, sg2 = (make_options(cfg=c, resolution=256) for c in ("paper256", "paper512", "stylegan2"))
    assert (p256.batch, p256.channel_base, p256.gamma, p256.ema_kimg, p256.mbstd_group) == (64, 16384, 1.0, 20.0, 8)
    assert (p512.channel_base, p512.gamma) == (32768, 0.5)
    assert (sg2.batch, sg2.gamma, sg2.lr_g, sg2.mapping_layers) == (32, 10.0, 0.002, 8)


def test_tiny_is_the_issue_config_and_demo_is_smaller():
    tiny, demo = make_options(cfg="tiny", resolution=64), make_options(cfg="demo", resolution=64)
    assert (tiny.channel_base, tiny.channel_max, tiny.mapping_layers, tiny.z_dim, tiny.w_dim, tiny.batch) == (2048, 512, 2, 512, 512, 16)
    assert tiny.gamma == pytest.approx(0.0002 * 64**2 / 16)
    assert (tiny.ema_kimg, tiny.ema_rampup, tiny.lr_g, tiny.lr_d, tiny.beta1, tiny.beta2) == (5.0, 0.05, 0.0025, 0.0025, 0.0, 0.99)
    assert demo.channel_base < tiny.channel_base and demo.channel_max < tiny.channel_max and demo.z_dim < tiny.z_dim


def test_dcgan_defaults_follow_its_paper():
    o = make_options(cfg="tiny", model="dcgan", resolution=64)
    assert (o.beta1, o.lr_g, o.gamma, o.pl_weight, o.style_mixing, o.augpipe) == (0.5, 5e-4, 0.0, 0.0, 0.0, "none")


def test_overrides_round_trip_and_validation():
    o = make_options(cfg="tiny", resolution=32, kimg=3, ada_target=None, p=0.25, lumaflip=True)
    assert TrainOptions.from_dict(o.to_dict()) == o
    assert set(CFG_NAMES) == {"paper256", "paper512", "stylegan2", "auto", "tiny", "demo"}
    for bad, match in [(dict(cfg="nope"), "--cfg"), (dict(augpipe="xyz"), "--augpipe"), (dict(p=2.0), "--p"),
                       (dict(ada_target=1.5), "--target"), (dict(kimg=0), "--kimg"), (dict(batch=6), "--batch"),
                       (dict(resolution=48), "power of two"), (dict(device="tpu"), "--device")]:
        kwargs = dict(cfg="tiny", resolution=32) | bad
        with pytest.raises(MicrotuneError, match=match):
            make_options(**kwargs)
    with pytest.raises(MicrotuneError, match="nonsense: is not a training option"):
        TrainOptions.from_dict({"nonsense": 1})


@pytest.mark.parametrize(
    ("bad", "message"),
    [  # the issue-13 holes (strings and lists where numbers belong) and one range rule per field
        (dict(gamma="x"), "--gamma: must be a number, got 'x'."),
        (dict(lr_g="fast"), "--lr-g: must be a number, got 'fast'."),
        (dict(ema_kimg=[1, 2]), "--ema-kimg: must be a number, got [1, 2]."),
        (dict(batch=16.0), "--batch: must be a whole number, got 16.0."),
        (dict(ada_target=1.01), "--target: must be in [0, 1], got 1.01."),  # r_t target: one rule, [0, 1]
        (dict(ada_target=-0.1), "--target: must be in [0, 1], got -0.1."),
        (dict(p=1.5), "--p: must be in [0, 1], got 1.5."),
        (dict(beta2=1.0), "--beta2: must be in [0, 1), got 1.0."),
        (dict(subset=0), "--subset: must be >= 1, got 0."),
        (dict(lumaflip="on"), "--lumaflip: must be true or false, got 'on'."),
        (dict(augpipe="none", ada_target=0.5), "--target: 0.5 is given but augpipe is none"),
        (dict(model="dcgan", ada_target=0.5), "--target: 0.5 is given but augpipe is none"),  # dcgan: no ADA
    ],
)
def test_one_typed_model_names_the_flag(bad, message):
    with pytest.raises(MicrotuneError) as info:
        make_options(**(dict(cfg="tiny", resolution=32) | bad))
    assert str(info.value).startswith(message)


def test_labels_name_the_yaml_path_and_ada_target_layers():
    with pytest.raises(MicrotuneError, match=r"^train\.gamma: must be >= 0, got -1\.$"):
        make_options(cfg="tiny", resolution=32, study={"gamma": -1}, label=lambda f: f"train.{f}")
    # augpipe none chosen more specifically than a study-wide target: no augmentation, no target
    assert make_options(cfg="tiny", resolution=32, study={"ada_target": 0.5}, augpipe="none").ada_target is None
    assert make_options(cfg="tiny", resolution=32, augpipe="none").ada_target is None
    # the two grid axes crossed: allowed (the trial has no augmentation); given together: refused
    crossed = make_options(cfg="tiny", resolution=32, crossed={"augpipe", "ada_target"}, augpipe="none", ada_target=0.9)
    assert crossed.ada_target is None
    with pytest.raises(MicrotuneError, match="augpipe is none"):
        make_options(cfg="tiny", resolution=32, study={"augpipe": "none", "ada_target": 0.9})
    assert make_options(cfg="tiny", resolution=32, study={"augpipe": "none"}, ada_target=None).ada_target is None


def test_cli_flag_names_match_the_train_parser_and_the_fields():
    """Messages name ``microtune train`` flags: every flag in the table exists and maps to a field, and
    every field but the two read from the dataset has one."""
    import argparse
    import dataclasses

    from microtune.gan import commands
    from microtune.gan.config import CLI_FLAGS

    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers())
    train = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["train"]
    flags = {s for action in train._actions for s in action.option_strings}
    fields = {f.name for f in dataclasses.fields(TrainOptions)}
    assert set(CLI_FLAGS.values()) <= flags and set(CLI_FLAGS) == fields - {"resolution", "img_channels"}
