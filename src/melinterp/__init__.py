"""melinterp: diffusion text-to-speech whose voice is interpolated between two reference recordings."""

__version__ = "0.1.0.dev0"
