"""Samplers for Grad-TTS's VP-SDE with a data-dependent prior mean (self-contained: no other melinterp imports).

`SCHEDULERS` names them all (``"euler"``: `GradTTSScheduler`, ``"dpm"``: `GradTTSDPMSolverScheduler`). A new
scheduler is one new module in this folder whose class carries ``@register_scheduler("name")``: every module here
is imported with the package, so the name reaches the CLI and the benchmarks without another edit.
"""

import importlib
import pkgutil

from .scheduling_grad_tts import (
    SCHEDULERS,
    GradTTSProcessMixin,
    GradTTSScheduler,
    GradTTSSchedulerOutput,
    register_scheduler,
)
from .scheduling_grad_tts_dpmsolver import GradTTSDPMSolverScheduler

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["SCHEDULERS", "GradTTSDPMSolverScheduler", "GradTTSProcessMixin", "GradTTSScheduler",
           "GradTTSSchedulerOutput", "register_scheduler"]
