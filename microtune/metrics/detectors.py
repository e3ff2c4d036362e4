"""Feature networks ("detectors") for FID/KID and precision/recall, and how their weights are found.

Standard detectors (the StyleGAN2-ADA SEM study's Methods):

``inception-v3-tf``
    The TF-compatible FID Inception-v3 (Heusel et al. 2017; weights converted from TensorFlow's
    ``inception-2015-12-05``), 2048-d pool features, inputs resized to 299×299 with TF1-style
    bilinear interpolation.  Architecture and resize come from torch-fidelity
    (``FeatureExtractorInceptionV3``); file ``weights-inception-2015-12-05-6726825d.pth``.
``vgg16-fc2``
    ImageNet VGG-16 (Simonyan & Zisserman 2015), 4096-d fc2 features after ReLU (torch-fidelity's
    default layer for precision/recall), inputs resized to 224×224, ImageNet normalisation.
    Architecture from torchvision; file ``vgg16-397923af.pth``.

Weights are looked up, in order, among the files/folders given as ``--detector-weights``, in
``<cache_dir>/detectors/``, and (when downloads are allowed and the machine has internet) at the
upstream URL, saved atomically into the cache.  Every file's sha256 must start with the hash
prefix in its upstream file name (torch.hub's convention), else :class:`MicrotuneError`.  A
missing standard file is an error that says how to provide it; nothing is substituted silently.
Files are loaded with ``torch.load(weights_only=True)``.

Offline fallback, only when chosen (``random-seed:N``): :class:`RandomConvDetector`, a small
random-weight conv net (4 stride-2 3×3 convs 3→32→64→128→256 with leaky ReLU on a 128×128 input,
then per-channel mean and std pooling → 512-d), initialised from ``torch.Generator(seed=N)``.  It
serves both roles; its numbers are tagged ``detector="random-seed:N"`` and are not comparable with
published FIDs.

Offline fallback with the standard architectures, only when chosen
(``inception-v3-tf-random-weights-seed:N``, ``vgg16-fc2-random-weights-seed:N``;
:func:`build_random_weights`): the Inception-v3 / VGG-16 fc2 networks above, input resize and
normalisation included, with **random, untrained** weights (every conv and linear weight
Kaiming-normal for ReLU, fan-in, biases 0, BatchNorm at its identity init), drawn from
``torch.Generator(seed=N)``.  Used by ``benchmarks/metric_sensitivity.py`` to test whether an
architecture's random features already see the disturbances that matter; the tag says
"random-weights" and the weights sha256 is of the state dict.

Offline detector trained here, only when chosen (``texture-vgg19-seed:N``; :func:`build_texture_vgg`):
the segmentation source network of :mod:`microtune.seg.source` (a VGG-19, width 0.125, batch norm,
trained with Adam for 300 steps of 16 32×32 images on its procedural micrograph-like texture classes: smooth and
rough fields, lamellae, grains with boundaries, particles), seeded with N.  Features: the mean
and standard deviation over space of each of its five conv units at the image's own resolution
(grey levels normalised as the segmentation networks do), 2 × (8+16+32+64+64) = 368-d.  Its
tag carries the first 12 hex digits of the state dict's sha256
(``texture-vgg19-seed:0:<sha12>``), which is also in cache keys.

All detectors take uint8 images (B, C, H, W) with C = 1 or 3; grayscale is repeated to 3 channels.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from microtune.errors import MicrotuneError
from microtune.io import atomic_output

__all__ = [
    "Detector",
    "RandomConvDetector",
    "WeightsSpec",
    "STANDARD_SPECS",
    "ROLE_DETECTOR",
    "parse_detector_choice",
    "is_detector_choice",
    "build_inception",
    "build_vgg16_fc2",
    "build_random_weights",
    "build_texture_vgg",
    "resolve_weights",
    "load_detector",
    "file_sha256",
]

_RANDOM_RE = re.compile(r"^random-seed:(\d+)$")
_TEXTURE_RE = re.compile(r"^texture-vgg19-seed:(\d+)$")
TEXTURE_VGG = {"width": 0.125, "steps": 300, "batch_norm": True, "optimizer": "adam"}
_RANDOM_ARCH_RE = re.compile(r"^(inception-v3-tf|vgg16-fc2)-random-weights-seed:(\d+)$")


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def state_dict_sha256(module: nn.Module) -> str:
    """Hex sha256 over a module's parameter/buffer names, shapes and float32 values."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def to_rgb_uint8(images: torch.Tensor) -> torch.Tensor:
    """Check a uint8 (B, C, H, W) batch and repeat grayscale (C = 1) to 3 channels."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"detectors take uint8 images (B, 1|3, H, W), got {images.dtype} {tuple(images.shape)}")
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


class Detector(nn.Module):
    """A frozen feature network with a provenance tag.

    Attributes
    ----------
    name : str
        Architecture name (``inception-v3-tf``, ``vgg16-fc2``, ``random-conv``).
    tag : str
        What every metric made with it is labelled with, e.g. ``inception-v3-tf:6726825d0af5``
        or ``random-seed:0``.
    weights_sha256 : str
        sha256 of the weights file (standard) or of the state dict (random); part of cache keys.
    feature_dim : int
        Length of a feature vector.
    images_seen : int
        Number of images run through :meth:`features` (tests use it to see cache hits).
    """

    def __init__(self, net: nn.Module, *, name: str, tag: str, weights_sha256: str, feature_dim: int):
        super().__init__()
        self.net = net.eval().requires_grad_(False)
        self.name, self.tag, self.weights_sha256, self.feature_dim = name, tag, weights_sha256, feature_dim
        self.images_seen = 0

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(to_rgb_uint8(images).to(self.device))

    @torch.inference_mode()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Float32 features (B, feature_dim) of uint8 images (B, 1|3, H, W), on the detector's device."""
        self.images_seen += int(images.shape[0])
        out = self.forward(images)
        return out.float().reshape(images.shape[0], self.feature_dim)


class RandomConvDetector(nn.Module):
    """Seeded random-weight conv net for offline runs (see the module docstring); 512-d features."""

    INPUT_SIZE = 128

    def __init__(self, seed: int):
        super().__init__()
        widths = (3, 32, 64, 128, 256)
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, stride=2, padding=1) for a, b in zip(widths, widths[1:]))
        gen = torch.Generator().manual_seed(int(seed))
        for conv in self.convs:
            nn.init.kaiming_normal_(conv.weight, a=0.2, generator=gen)
            nn.init.normal_(conv.bias, std=0.1, generator=gen)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.float() - 128.0) / 128.0
        x = F.interpolate(x, size=(self.INPUT_SIZE, self.INPUT_SIZE), mode="bilinear", antialias=True,
                          align_corners=False)
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)
        return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)


def build_random(seed: int) -> Detector:
    """The ``random-seed:N`` detector."""
    net = RandomConvDetector(seed)
    return Detector(net, name="random-conv", tag=f"random-seed:{seed}", weights_sha256=state_dict_sha256(net),
                    feature_dim=512)


def _inception_layers(tfi) -> list[tuple[str, Callable[[], nn.Module]]]:
    """The layers of torch-fidelity's FID Inception-v3, by attribute name (its state-dict keys)."""
    return [
        ("Conv2d_1a_3x3", lambda: tfi.BasicConv2d(3, 32, kernel_size=3, stride=2)),
        ("Conv2d_2a_3x3", lambda: tfi.BasicConv2d(32, 32, kernel_size=3)),
        ("Conv2d_2b_3x3", lambda: tfi.BasicConv2d(32, 64, kernel_size=3, padding=1)),
        ("MaxPool_1", lambda: nn.MaxPool2d(kernel_size=3, stride=2)),
        ("Conv2d_3b_1x1", lambda: tfi.BasicConv2d(64, 80, kernel_size=1)),
        ("Conv2d_4a_3x3", lambda: tfi.BasicConv2d(80, 192, kernel_size=3)),
        ("MaxPool_2", lambda: nn.MaxPool2d(kernel_size=3, stride=2)),
        ("Mixed_5b", lambda: tfi.InceptionA(192, pool_features=32)),
        ("Mixed_5c", lambda: tfi.InceptionA(256, pool_features=64)),
        ("Mixed_5d", lambda: tfi.InceptionA(288, pool_features=64)),
        ("Mixed_6a", lambda: tfi.InceptionB(288)),
        ("Mixed_6b", lambda: tfi.InceptionC(768, channels_7x7=128)),
        ("Mixed_6c", lambda: tfi.InceptionC(768, channels_7x7=160)),
        ("Mixed_6d", lambda: tfi.InceptionC(768, channels_7x7=160)),
        ("Mixed_6e", lambda: tfi.InceptionC(768, channels_7x7=192)),
        ("Mixed_7a", lambda: tfi.InceptionD(768)),
        ("Mixed_7b", lambda: tfi.InceptionE_1(1280)),
        ("Mixed_7c", lambda: tfi.InceptionE_2(2048)),
        ("AvgPool", lambda: nn.AdaptiveAvgPool2d(output_size=(1, 1))),
        ("fc", lambda: nn.Linear(2048, 1008)),
    ]


def _inception_module() -> nn.Module:
    """torch-fidelity's TF-compatible Inception-v3 (its forward, its blocks), without weights.

    Its own ``__init__`` loads weights with ``torch.load(weights_only=False)`` or downloads them;
    we build the same layers here and load a verified state dict with ``weights_only=True``.
    """
    from torch_fidelity import feature_extractor_inceptionv3 as tfi
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase

    class _Inception(tfi.FeatureExtractorInceptionV3):
        def __init__(self):  # noqa: D401 - deliberately skips the parent's loading __init__
            FeatureExtractorBase.__init__(self, "inception-v3-compat", ["2048"])
            self.feature_extractor_internal_dtype = torch.float32
            for name, make in _inception_layers(tfi):
                setattr(self, name, make())

    return _Inception()


class _InceptionPool(nn.Module):
    def __init__(self, state_dict: dict | None):
        super().__init__()
        self.model = _inception_module()
        if state_dict is not None:
            self.model.load_state_dict(state_dict)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)[0]


class _VGG16FC2(nn.Module):
    """VGG-16 up to fc2 + ReLU on TF1-style bilinear 224×224 inputs with ImageNet normalisation."""

    def __init__(self, state_dict: dict | None):
        super().__init__()
        import torchvision

        self.model = torchvision.models.vgg16(weights=None)
        if state_dict is not None:
            self.model.load_state_dict(state_dict)
        self.model.classifier = self.model.classifier[:4]  # fc1, relu, dropout, fc2
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

        x = interpolate_bilinear_2d_like_tensorflow1x(images.float(), size=(224, 224), align_corners=False)
        return F.relu(self.model((x - self.mean) / self.std))


def build_inception(state_dict: dict | None, weights_sha256: str) -> Detector:
    """TF-compatible FID Inception-v3 (2048-d) from a state dict (``None``: untrained, for tests)."""
    return Detector(_InceptionPool(state_dict), name="inception-v3-tf",
                    tag=f"inception-v3-tf:{weights_sha256[:12]}", weights_sha256=weights_sha256, feature_dim=2048)


def build_vgg16_fc2(state_dict: dict | None, weights_sha256: str) -> Detector:
    """VGG-16 fc2 (4096-d, after ReLU) from a torchvision state dict (``None``: untrained)."""
    return Detector(_VGG16FC2(state_dict), name="vgg16-fc2", tag=f"vgg16-fc2:{weights_sha256[:12]}",
                    weights_sha256=weights_sha256, feature_dim=4096)


def build_random_weights(choice: str) -> Detector:
    """A standard architecture with seeded random weights, e.g. ``inception-v3-tf-random-weights-seed:0``.

    Every ``Conv2d``/``Linear`` weight is drawn Kaiming-normal (ReLU gain, fan-in; He et al. 2015)
    from ``torch.Generator(seed=N)`` in module order and every bias is 0, so activations keep their
    scale through the depth; BatchNorm layers keep their identity init.  The tag is ``choice``
    itself and the weights sha256 that of the state dict, so cache keys differ per seed.
    """
    match = _RANDOM_ARCH_RE.match(choice)
    if match is None:
        raise MicrotuneError(f"detector {choice!r} is not understood; use inception-v3-tf-random-weights-seed:N "
                             f"or vgg16-fc2-random-weights-seed:N.")
    arch, seed = match.group(1), int(match.group(2))
    net = _InceptionPool(None) if arch == "inception-v3-tf" else _VGG16FC2(None)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu", generator=gen)
                if module.bias is not None:
                    module.bias.zero_()
    dim = 2048 if arch == "inception-v3-tf" else 4096
    return Detector(net, name=f"{arch}-random-weights", tag=choice, weights_sha256=state_dict_sha256(net),
                    feature_dim=dim)


class _TextureVGGFeatures(nn.Module):
    """Spatial mean and std of each conv unit of a :class:`microtune.seg.networks.VGG19`."""

    def __init__(self, vgg: nn.Module):
        super().__init__()
        self.vgg = vgg

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        from microtune.seg.loop import GRAY_MEAN, GRAY_STD

        x = images.float().mean(dim=1, keepdim=True) / 255.0  # grey (RGB inputs are repeated grey)
        x = (x - GRAY_MEAN) / GRAY_STD
        pooled = []
        for b in range(1, 6):
            x = getattr(self.vgg, f"conv{b}")(x)
            flat = x.flatten(2)
            pooled += [flat.mean(dim=2), flat.std(dim=2) if flat.shape[2] > 1 else torch.zeros_like(flat[..., 0])]
        return torch.cat(pooled, dim=1)


def build_texture_vgg(choice: str, cache_dir: str | os.PathLike | None = None, log=None) -> Detector:
    """The ``texture-vgg19-seed:N`` detector (see the module docstring); trained on first use
    (about two minutes on 2 busy CPU cores), cached in ``<cache_dir>/detectors/`` when given."""
    match = _TEXTURE_RE.match(choice)
    if match is None:
        raise MicrotuneError(f"detector {choice!r} is not understood; use texture-vgg19-seed:N.")
    from microtune.seg.source import source_vgg

    seed = int(match.group(1))
    folder = Path(cache_dir) / "detectors" if cache_dir is not None else None
    vgg, _ = source_vgg(width=TEXTURE_VGG["width"], in_channels=1, source="textures", steps=TEXTURE_VGG["steps"],
                        seed=seed, optimizer=TEXTURE_VGG["optimizer"], batch_norm=TEXTURE_VGG["batch_norm"],
                        cache_dir=folder, log=log)
    net = _TextureVGGFeatures(vgg.eval())
    digest = state_dict_sha256(net)
    dim = 2 * sum(getattr(vgg, "channels"))
    return Detector(net, name="texture-vgg19", tag=f"{choice}:{digest[:12]}", weights_sha256=digest, feature_dim=dim)


@dataclasses.dataclass(frozen=True)
class WeightsSpec:
    """Where a standard detector's weights come from and how they are checked.

    Attributes
    ----------
    name : str
        Detector name used in tags.
    filename : str
        Upstream file name, looked up in folders and the cache.
    sha256_prefix : str
        Required prefix of the file's sha256 (from the upstream file name, torch.hub convention).
    url : str
        Download address on machines with internet.
    build : callable
        ``build(state_dict, weights_sha256) -> Detector``.
    """

    name: str
    filename: str
    sha256_prefix: str
    url: str
    build: Callable[[dict | None, str], Detector]


STANDARD_SPECS: dict[str, WeightsSpec] = {
    "inception-v3-tf": WeightsSpec(
        "inception-v3-tf", "weights-inception-2015-12-05-6726825d.pth", "6726825d",
        "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth",
        build_inception),
    "vgg16-fc2": WeightsSpec(
        "vgg16-fc2", "vgg16-397923af.pth", "397923af", "https://download.pytorch.org/models/vgg16-397923af.pth",
        build_vgg16_fc2),
}
#: Which standard detector serves which role: FID and KID use "fid", precision/recall "pr".
ROLE_DETECTOR = {"fid": "inception-v3-tf", "pr": "vgg16-fc2"}


DETECTOR_CHOICES = "standard, random-seed:N or texture-vgg19-seed:N"


def is_detector_choice(choice: str) -> bool:
    """True for the detectors ``load_detector`` builds: ``standard`` (Inception-v3 + VGG-16 weight
    files), ``random-seed:N`` (random convolutions) and ``texture-vgg19-seed:N`` (trained here, offline)."""
    return choice == "standard" or bool(_RANDOM_RE.match(choice) or _TEXTURE_RE.match(choice))


def parse_detector_choice(choice: str) -> int | None:
    """``"random-seed:N"`` → ``N``; ``"standard"`` and ``"texture-vgg19-seed:N"`` → ``None``;
    anything else is refused in one sentence."""
    if not is_detector_choice(choice):
        raise MicrotuneError(f"--detector {choice!r} is not understood; use {DETECTOR_CHOICES}.")
    match = _RANDOM_RE.match(choice)
    return int(match.group(1)) if match else None


def _how_to_provide(spec: WeightsSpec, folder: Path | None) -> str:
    where = f" or place it in {folder}/" if folder is not None else ""
    return (f"download {spec.url} and pass it with --detector-weights PATH{where}, "
            f"or choose --detector random-seed:N for an explicitly labelled offline run")


def _download(spec: WeightsSpec, folder: Path, timeout_s: float) -> Path | None:
    """Fetch ``spec.url`` into ``folder`` atomically; ``None`` when the network is unreachable."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / spec.filename
    try:
        with atomic_output(target) as tmp:
            with open(tmp, "wb") as out, urllib.request.urlopen(spec.url, timeout=timeout_s) as resp:
                while block := resp.read(1 << 22):
                    out.write(block)
            digest = file_sha256(tmp)
            if not digest.startswith(spec.sha256_prefix):
                raise MicrotuneError(f"download of {spec.url} has sha256 {digest}, not {spec.sha256_prefix}...; "
                                     f"{_how_to_provide(spec, folder)}.")
        return target
    except OSError:
        return None


def resolve_weights(
    spec: WeightsSpec,
    weights: Sequence[str | os.PathLike] = (),
    cache_dir: str | os.PathLike | None = None,
    *,
    allow_download: bool = True,
    timeout_s: float = 30.0,
) -> tuple[Path, str]:
    """Find and verify the weights file for ``spec``; return ``(path, sha256)``.

    Parameters
    ----------
    spec : WeightsSpec
        Which detector.
    weights : sequence of path
        Files or folders from ``--detector-weights``.  A file matches ``spec`` by its sha256
        prefix (files for other detectors are skipped); a folder by ``spec.filename``.
    cache_dir : path, optional
        Cache root; weights live in ``<cache_dir>/detectors/``.
    allow_download : bool
        Try ``spec.url`` when nothing local is found.

    Raises
    ------
    MicrotuneError
        A file named ``spec.filename`` with the wrong sha256, or no file at all.
    """
    folder = Path(cache_dir) / "detectors" if cache_dir is not None else None
    candidates: list[Path] = []
    for entry in map(Path, weights):
        if entry.is_dir():
            candidates.append(entry / spec.filename)
        elif entry.is_file():
            digest = file_sha256(entry)
            if digest.startswith(spec.sha256_prefix):
                return entry, digest
        else:
            raise MicrotuneError(f"--detector-weights {entry} does not exist.")
    if folder is not None:
        candidates.append(folder / spec.filename)
    for path in candidates:
        if path.is_file():
            digest = file_sha256(path)
            if not digest.startswith(spec.sha256_prefix):
                raise MicrotuneError(f"{path} has sha256 {digest[:16]}... but the {spec.name} weights must start "
                                     f"with {spec.sha256_prefix}; replace it: {_how_to_provide(spec, folder)}.")
            return path, digest
    if allow_download and folder is not None:
        path = _download(spec, folder, timeout_s)
        if path is not None:
            return path, file_sha256(path)
    raise MicrotuneError(f"No {spec.name} weights file ({spec.filename}) was found; {_how_to_provide(spec, folder)}.")


def check_weight_files(weights: Sequence[str | os.PathLike], specs: Sequence[WeightsSpec]) -> None:
    """Refuse a ``--detector-weights`` file that is none of ``specs`` (a wrong or corrupt download)."""
    for entry in map(Path, weights):
        if entry.is_file():
            digest = file_sha256(entry)
            if not any(digest.startswith(s.sha256_prefix) for s in specs):
                expected = ", ".join(f"{s.name} {s.sha256_prefix}... ({s.url})" for s in specs)
                raise MicrotuneError(f"--detector-weights {entry} has sha256 {digest[:16]}..., which matches none "
                                     f"of the expected files: {expected}.")


def load_detector(
    role: str,
    choice: str = "standard",
    *,
    weights: Sequence[str | os.PathLike] = (),
    cache_dir: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    allow_download: bool = True,
    specs: dict[str, WeightsSpec] | None = None,
) -> Detector:
    """Load the detector for ``role`` (``"fid"`` for FID/KID, ``"pr"`` for precision/recall).

    Parameters
    ----------
    role : {"fid", "pr"}
        Which metric family the detector serves.
    choice : str
        ``"standard"``, ``"random-seed:N"`` or ``"texture-vgg19-seed:N"``.
    weights, cache_dir, allow_download
        See :func:`resolve_weights`.
    device : str or torch.device
        Where the network runs.
    specs : dict, optional
        Replacement for :data:`STANDARD_SPECS` (tests use small stand-ins).
    """
    if role not in ROLE_DETECTOR:
        raise ValueError(f"role must be one of {sorted(ROLE_DETECTOR)}, got {role!r}")
    seed = parse_detector_choice(choice)
    if seed is not None:
        return build_random(seed).to(device)
    if _TEXTURE_RE.match(choice):  # trained on first use, cached under <cache_dir>/detectors/
        return build_texture_vgg(choice, cache_dir=cache_dir).to(device)
    specs = specs or STANDARD_SPECS
    check_weight_files(weights, list(specs.values()))
    spec = specs[ROLE_DETECTOR[role]]
    path, digest = resolve_weights(spec, weights, cache_dir, allow_download=allow_download)
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
        detector = spec.build(state_dict, digest)
    except (RuntimeError, KeyError, ValueError, EOFError) as exc:
        raise MicrotuneError(f"{path} could not be loaded as {spec.name} weights ({exc.__class__.__name__}); "
                             f"{_how_to_provide(spec, None)}.") from exc
    return detector.to(device)
