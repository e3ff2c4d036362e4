"""``model: stylegan2``: StyleGAN2 with ADA (the default family), see :mod:`microtune.sweep.families.gan`."""

from microtune.sweep.families import register
from microtune.sweep.families.gan import GanFamily

FAMILY = register(GanFamily("stylegan2"))
