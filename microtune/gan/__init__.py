"""GAN engine: StyleGAN2-ADA and the DCGAN baseline in pure PyTorch (training loop in ``loop``)."""
