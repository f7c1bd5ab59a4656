"""Samplers for Grad-TTS's VP-SDE with a data-dependent prior mean (self-contained: no other melinterp imports)."""

from .scheduling_grad_tts import GradTTSProcessMixin, GradTTSScheduler, GradTTSSchedulerOutput
from .scheduling_grad_tts_dpmsolver import GradTTSDPMSolverScheduler

__all__ = ["GradTTSDPMSolverScheduler", "GradTTSProcessMixin", "GradTTSScheduler", "GradTTSSchedulerOutput"]
