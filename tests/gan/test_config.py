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
    with pytest.raises(MicrotuneError, match="unknown"):
        TrainOptions.from_dict({"nonsense": 1})
