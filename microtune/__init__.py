"""microtune: hyperparameter studies of generative and segmentation models of micrographs."""

__version__ = "0.1.0"
