"""Detectors: seeded random fallback, grayscale handling, weight lookup, sha256 checks, Inception parity."""

import dataclasses
import hashlib

import pytest
import torch
from torch import nn

from microtune.errors import MicrotuneError
from microtune.metrics import detectors as D


def _gray(n=3, size=40, seed=0):
    return torch.randint(0, 256, (n, 1, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_random_detector_is_seeded_and_tagged():
    a, b, c = D.load_detector("fid", "random-seed:7"), D.load_detector("pr", "random-seed:7"), D.build_random(8)
    x = _gray()
    assert a.tag == "random-seed:7" and a.feature_dim == 512
    assert a.weights_sha256 == b.weights_sha256 != c.weights_sha256
    assert torch.equal(a.features(x), b.features(x))
    assert not torch.allclose(a.features(x), c.features(x))


def test_grayscale_is_repeated_to_three_channels():
    det = D.build_random(0)
    x = _gray()
    assert torch.equal(det.features(x), det.features(x.repeat(1, 3, 1, 1)))
    with pytest.raises(ValueError):
        det.features(x.float())


@pytest.mark.parametrize("bad", ["", "random", "random-seed:", "random-seed:-1", "inception"])
def test_unknown_detector_choice_is_refused(bad):
    with pytest.raises(MicrotuneError, match="--detector"):
        D.parse_detector_choice(bad)


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return self.conv(x.float()).mean(dim=(2, 3))


def _tiny_build(state_dict, sha):
    net = _Tiny()
    net.load_state_dict(state_dict)
    return D.Detector(net, name="tiny", tag=f"tiny:{sha[:12]}", weights_sha256=sha, feature_dim=4)


@pytest.fixture
def tiny_weights(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "downloads" / "tiny-weights.pth"
    path.parent.mkdir()
    torch.save(_Tiny().state_dict(), path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    spec = D.WeightsSpec("inception-v3-tf", "tiny-weights.pth", sha[:8], path.as_uri(), _tiny_build)
    return path, sha, {"inception-v3-tf": spec, "vgg16-fc2": dataclasses.replace(spec, sha256_prefix="ffffffff")}


def test_weights_from_explicit_file_folder_and_cache(tiny_weights, tmp_path):
    path, sha, specs = tiny_weights
    for weights, cache in (([path], None), ([path.parent], None), ((), tmp_path / "cache")):
        if cache is not None:
            (cache / "detectors").mkdir(parents=True)
            (cache / "detectors" / path.name).write_bytes(path.read_bytes())
        det = D.load_detector("fid", weights=weights, cache_dir=cache, allow_download=False, specs=specs)
        assert det.tag == f"tiny:{sha[:12]}" and det.weights_sha256 == sha
        assert det.features(_gray(2)).shape == (2, 4)


def test_download_goes_to_the_cache_atomically(tiny_weights, tmp_path):
    _, sha, specs = tiny_weights  # the spec's URL is a file:// URI: no network needed
    det = D.load_detector("fid", cache_dir=tmp_path / "c", allow_download=True, specs=specs)
    assert det.weights_sha256 == sha
    assert [p.name for p in (tmp_path / "c" / "detectors").iterdir()] == ["tiny-weights.pth"]


def test_wrong_hash_in_cache_is_a_clear_error(tiny_weights, tmp_path):
    _, _, specs = tiny_weights
    (tmp_path / "detectors").mkdir()
    (tmp_path / "detectors" / "tiny-weights.pth").write_bytes(b"not the weights")
    with pytest.raises(MicrotuneError, match=r"tiny-weights\.pth has sha256 .* must start with .*--detector-weights"):
        D.load_detector("fid", cache_dir=tmp_path, allow_download=False, specs=specs)


def test_explicit_file_of_unknown_hash_is_refused(tiny_weights, tmp_path):
    _, _, specs = tiny_weights
    bogus = tmp_path / "bogus.pth"
    bogus.write_bytes(b"corrupt download")
    with pytest.raises(MicrotuneError, match="bogus.pth has sha256 .* matches none"):
        D.load_detector("fid", weights=[bogus], allow_download=False, specs=specs)


def test_missing_standard_weights_say_how_to_provide_them(tmp_path):
    with pytest.raises(MicrotuneError, match="No inception-v3-tf weights.*download https://.*--detector-weights.*"
                                             "random-seed:N"):
        D.load_detector("fid", "standard", cache_dir=tmp_path, allow_download=False)
    with pytest.raises(MicrotuneError, match="vgg16-fc2"):
        D.load_detector("pr", "standard", allow_download=False)


def test_inception_matches_torch_fidelity_on_identical_weights_and_inputs(tmp_path):
    # Reference: torch-fidelity's own FeatureExtractorInceptionV3 loading the same (random) file.
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    torch.manual_seed(0)
    ours = D.build_inception(None, "0" * 64)
    path = tmp_path / "inception.pth"
    torch.save(ours.net.model.state_dict(), path)
    sha = D.file_sha256(path)
    specs = dict(D.STANDARD_SPECS)
    specs["inception-v3-tf"] = dataclasses.replace(specs["inception-v3-tf"], sha256_prefix=sha[:8])
    loaded = D.load_detector("fid", weights=[path], allow_download=False, specs=specs)
    assert loaded.tag == f"inception-v3-tf:{sha[:12]}" and loaded.feature_dim == 2048
    reference = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path))
    x = _gray(2, 48)
    with torch.inference_mode():
        expected = reference(x.repeat(1, 3, 1, 1))[0]
    torch.testing.assert_close(loaded.features(x), expected)


def test_vgg16_fc2_gives_4096_relu_features():
    torch.manual_seed(0)
    det = D.build_vgg16_fc2(None, "1" * 64)
    feats = det.features(_gray(2, 32))
    assert det.tag == "vgg16-fc2:111111111111" and feats.shape == (2, 4096) and bool((feats >= 0).all())


def test_texture_detector_is_a_choice_trained_once_and_tagged_by_its_weights(tmp_path, monkeypatch):
    """`--detector texture-vgg19-seed:N` (offline, trained here): load_detector builds it, caches the
    trained weights under <cache>/detectors, and tags it with their sha256 so that metric values and
    cached real statistics name the exact network. 3 training steps instead of 300 keep this fast;
    the seed and the cache are what is checked."""
    monkeypatch.setitem(D.TEXTURE_VGG, "steps", 3)
    first = D.load_detector("fid", "texture-vgg19-seed:0", cache_dir=tmp_path)
    again = D.load_detector("pr", "texture-vgg19-seed:0", cache_dir=tmp_path)  # from the cache
    other = D.load_detector("fid", "texture-vgg19-seed:1", cache_dir=tmp_path)
    assert first.tag.startswith("texture-vgg19-seed:0:") and first.tag == again.tag != other.tag
    assert first.tag.endswith(first.weights_sha256[:12]) and list((tmp_path / "detectors").iterdir())
    images = torch.randint(0, 256, (3, 1, 32, 32), dtype=torch.uint8)
    feats = first.features(images)
    assert feats.shape == (3, first.feature_dim) and torch.equal(feats, again.features(images))
    assert D.parse_detector_choice("texture-vgg19-seed:2") is None and D.is_detector_choice("texture-vgg19-seed:2")
