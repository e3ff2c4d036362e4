"""Adaptive augmentation probability p (Karras et al. 2020, "Training GANs with limited data", Sec. 3).

The overfitting heuristic is r_t = E[sign(D(x_real))] (ADA Eq. 1, right), taken over the real
logits of ``interval`` = 4 consecutive minibatches. After every ``interval`` minibatches p moves by
``sign(r_t - target) * images / (ada_kimg * 1000)``, where ``images`` is the number of real images
in those minibatches, so that p can go from 0 to 1 in ``ada_kimg`` = 500 kimg; p is clamped to
[0, 1]. With ``target=None`` p stays fixed and r_t is still measured (for reporting).

State lives in device tensors (float64 for p, so that 500 kimg of equal steps sum to 1 up to
rounding), so :meth:`AdaController.observe` never synchronises with the host.
"""

from __future__ import annotations

import torch


class AdaController:
    """Tracks r_t from real logits and adjusts p every ``interval`` minibatches."""

    def __init__(
        self,
        *,
        target: float | None = 0.6,  # r_t target (0.6 in ADA, 0.5 in the SEM study); None = fixed p
        p: float = 0.0,              # initial p (fixed p when target is None)
        ada_kimg: float = 500.0,     # kimg for p to be able to go 0 -> 1 (ADA Sec. 3)
        interval: int = 4,           # minibatches between adjustments (ADA Sec. 3)
        device: torch.device | str = "cpu",
    ) -> None:
        self.target, self.ada_kimg, self.interval = target, ada_kimg, interval
        self.device = torch.device(device)
        self.p = torch.tensor(float(p), dtype=torch.float64, device=self.device)
        self.rt = torch.tensor(float("nan"), dtype=torch.float64, device=self.device)  # last r_t
        self._sign_sum = torch.zeros([], dtype=torch.float64, device=self.device)
        self._count = torch.zeros([], dtype=torch.float64, device=self.device)
        self._batches = 0

    def observe(self, real_logits: torch.Tensor) -> None:
        """Account one minibatch of D's logits on real images; adjust p every ``interval`` calls."""
        logits = real_logits.detach()
        self._sign_sum += torch.sign(logits).sum().to(torch.float64)
        self._count += logits.numel()
        self._batches += 1
        if self._batches % self.interval == 0:
            self._adjust()

    def _adjust(self) -> None:
        self.rt = self._sign_sum / self._count.clamp(min=1)
        if self.target is not None:
            step = torch.sign(self.rt - self.target) * self._count / (self.ada_kimg * 1000)
            self.p = (self.p + step).clamp(0.0, 1.0)
        self._sign_sum.zero_()
        self._count.zero_()

    def probability(self) -> float | torch.Tensor:
        """p for the augmentation pipe: a float on CPU (exact p = 0 shortcut), a tensor elsewhere."""
        if self.device.type == "cpu":
            return float(self.p)
        return self.p.to(torch.float32)

    def state_dict(self) -> dict:
        """Everything needed to resume exactly (tensors on CPU)."""
        copy = lambda t: t.detach().to("cpu", copy=True)  # noqa: E731 - never alias live state
        return {
            "p": copy(self.p), "rt": copy(self.rt), "sign_sum": copy(self._sign_sum),
            "count": copy(self._count), "batches": self._batches,
        }

    def load_state_dict(self, state: dict) -> None:
        load = lambda t: t.to(self.device, torch.float64, copy=True)  # noqa: E731
        self.p, self.rt = load(state["p"]), load(state["rt"])
        self._sign_sum, self._count = load(state["sign_sum"]), load(state["count"])
        self._batches = int(state["batches"])
