"""GAN losses: non-saturating logistic, lazy R1, path-length regularisation, style mixing.

References
----------
[GAN]  Goodfellow et al. 2014, non-saturating generator loss -log D(G(z)) = softplus(-logit).
[R1]   Mescheder et al. 2018, R1 = gamma/2 · E ||grad_x D(x)||² on reals.
[SG]   Karras et al. 2019, style mixing regularisation (Sec. 3.1, 90 % of images).
[SG2]  Karras et al. 2020, lazy regularisation (Sec. 3.1: every 16 D / 4 G steps, the term scaled by
       its interval) and path-length regularisation (Sec. 3.2, Eq. 4: (|J_w^T y| - a)², y ~ N(0, I)
       / sqrt(H·W), a = EMA of the lengths with decay 0.01, weight 2).
[ADA]  Karras et al. 2020, augmentations applied to every image D sees, in both G and D phases.

Implementation choice: a regularised step adds ``interval ×`` the regulariser to the main loss and
takes one optimiser step, instead of the official extra step per regulariser; hence no learning
rate/beta correction for lazy regularisation is needed. R1 is the gradient with respect to the
*non-augmented* reals through the (differentiable) augmentation, which needs grid_sample's double
backward (available in torch 2.14 on CPU; see DESIGN.md).
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from microtune.tracking import schema

PL_DECAY = 0.01       # EMA decay of the path-length target a ([SG2] Sec. 3.2)
PL_BATCH_SHRINK = 2   # path-length batch = batch / 2 ([SG2] App. B, saves compute)


@contextmanager
def frozen(module: nn.Module):
    """Temporarily stop gradients to ``module``'s parameters (no wasted weight gradients)."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


class GanLoss:
    """Losses for one G step and one D step. Works for StyleGAN2 (mapping + synthesis) and DCGAN."""

    def __init__(
        self,
        G: nn.Module,
        D: nn.Module,
        augment,                     # callable(images, p) -> images
        *,
        r1_gamma: float = 0.0,       # R1 weight (0 = off)
        r1_interval: int = 16,       # lazy R1 interval ([SG2] Sec. 3.1)
        pl_weight: float = 0.0,      # path-length weight (0 = off; 2 in [SG2])
        pl_interval: int = 4,        # lazy path-length interval ([SG2] Sec. 3.1)
        style_mixing: float = 0.0,   # style-mixing probability (0.9 in [SG])
        bf16: bool = False,          # bfloat16 autocast of the unregularised passes
        device: torch.device | str = "cpu",
    ) -> None:
        self.G, self.D, self.augment = G, D, augment
        self.r1_gamma, self.r1_interval = r1_gamma, r1_interval
        self.pl_weight, self.pl_interval, self.style_mixing = pl_weight, pl_interval, style_mixing
        self.styled = hasattr(G, "mapping")
        self.pl_mean = torch.zeros([], device=device)
        self.device_type, self.bf16 = torch.device(device).type, bf16
        # Callables for the unregularised passes; `compile_main_passes` swaps in compiled versions.
        # Regularisers need double backward, which compiled graphs do not support: they stay eager.
        self.D_main = D
        self.G_main = G.synthesis if self.styled else G

    def compile_main_passes(self) -> None:
        """torch.compile the forward passes without double backward (``--compile``)."""
        self.D_main = torch.compile(self.D)
        self.G_main = torch.compile(self.G.synthesis if self.styled else self.G)

    def _autocast(self, enabled: bool = True):
        """bfloat16 autocast for main passes (regularisers and their double backward stay fp32)."""
        return torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.bf16 and enabled)

    def generate(self, z: torch.Tensor, *, update_w_avg: bool = False, main: bool = False):
        """Images (and ws for StyleGAN2) with per-image style mixing at a random cutoff ([SG] 3.1)."""
        if not self.styled:
            return (self.G_main if main else self.G)(z), None
        ws = self.G.mapping(z, update_w_avg=update_w_avg)
        if self.style_mixing > 0:
            n, num_ws = ws.shape[:2]
            cutoff = torch.randint(1, num_ws, [n], device=z.device)
            cutoff = torch.where(torch.rand(n, device=z.device) < self.style_mixing, cutoff, num_ws)
            mixed = self.G.mapping(torch.randn_like(z))
            take = torch.arange(num_ws, device=z.device)[None, :] >= cutoff[:, None]
            ws = torch.where(take[:, :, None], mixed, ws)
        return (self.G_main if main else self.G.synthesis)(ws), ws

    def generator_loss(self, z: torch.Tensor, p, *, regularize: bool) -> tuple[torch.Tensor, dict]:
        """Non-saturating loss softplus(-D(aug(G(z)))) ([GAN]) (+ interval × path length)."""
        with frozen(self.D), self._autocast():
            img, _ = self.generate(z, update_w_avg=True, main=True)
            logits = self.D_main(self.augment(img, p))
        loss_main = F.softplus(-logits.float()).mean()
        stats = {schema.LOSS_G: loss_main.detach()}
        loss = loss_main
        if regularize and self.pl_weight > 0 and self.styled:
            penalty = self.path_length_penalty(z[: max(1, z.shape[0] // PL_BATCH_SHRINK)])
            loss = loss + penalty * (self.pl_weight * self.pl_interval)
            stats[schema.LOSS_PL] = penalty.detach()
        return loss, stats

    def path_length_penalty(self, z: torch.Tensor) -> torch.Tensor:
        """E[(|J_w^T y| - a)²] with y ~ N(0, I)/sqrt(H W); a tracks the mean length ([SG2] Eq. 4)."""
        img, ws = self.generate(z)
        noise = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
        (grad,) = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)
        lengths = grad.square().sum(dim=2).mean(dim=1).sqrt()
        self.pl_mean = self.pl_mean.lerp(lengths.mean().detach(), PL_DECAY)
        return (lengths - self.pl_mean).square().mean()

    def discriminator_loss(self, real: torch.Tensor, z: torch.Tensor, p, *, regularize: bool):
        """softplus(D(aug(G(z)))) + softplus(-D(aug(x))) (+ interval × gamma/2 · |grad_x D|²).

        Returns (loss, stats, real_logits); real logits feed the ADA controller.
        """
        with torch.no_grad(), self._autocast():
            fake, _ = self.generate(z, main=True)
        with self._autocast():
            loss_fake = F.softplus(self.D_main(self.augment(fake, p)).float()).mean()
        do_r1 = regularize and self.r1_gamma > 0
        real = real.detach().requires_grad_(do_r1)
        with self._autocast(enabled=not do_r1):
            real_logits = (self.D if do_r1 else self.D_main)(self.augment(real, p)).float()
        loss = loss_fake + F.softplus(-real_logits).mean()
        stats = {schema.LOSS_D: loss.detach()}
        if do_r1:
            (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
            penalty = grad.square().sum(dim=[1, 2, 3]).mean()
            loss = loss + penalty * (self.r1_gamma / 2 * self.r1_interval)
            stats[schema.LOSS_R1] = penalty.detach()
        return loss, stats, real_logits

    def state_dict(self) -> dict:
        return {"pl_mean": self.pl_mean.detach().to("cpu", copy=True)}

    def load_state_dict(self, state: dict) -> None:
        self.pl_mean = state["pl_mean"].to(self.pl_mean.device, copy=True)
