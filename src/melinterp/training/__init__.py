"""Training: configs, the Grad-TTS objective with reference styles, and the accelerate loop."""

from melinterp.training.config import DataConfig, LogConfig, OptimConfig, TrainingConfig

__all__ = ["DataConfig", "LogConfig", "OptimConfig", "TrainingConfig"]
