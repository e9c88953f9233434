"""emoframe: a PyTorch Lightning framework for facial emotion recognition from images and video."""

__version__ = "0.1.0"
