"""``model: dcgan``: the DCGAN baseline, see :mod:`microtune.sweep.families.gan`."""

from microtune.sweep.families import register
from microtune.sweep.families.gan import GanFamily

FAMILY = register(GanFamily("dcgan"))
