"""melinterp: diffusion text-to-speech whose voice is interpolated between two reference recordings.

The public classes are importable from here (``from melinterp import MelStyleInterpolationPipeline``); they are
loaded on first use, so ``import melinterp`` stays light. A saved pipeline's ``model_index.json`` names its
components ``["melinterp", ClassName]``: every component class is exported here.
"""

import importlib
import os

__version__ = "0.1.0.dev0"

#: the pipeline folder bundled with the package (trained on the synthetic default corpus; see its README.md):
#: ``MelStyleInterpolationPipeline.from_pretrained(melinterp.DEFAULT_MODEL)`` works offline after installation
DEFAULT_MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "default_model")

_EXPORTS = {
    "MelStyleInterpolationPipeline": "melinterp.pipelines",
    "MelStyleInterpolationPipelineOutput": "melinterp.pipelines",
    "ReferenceEncoding": "melinterp.pipelines",
    "NoiseTuningConfig": "melinterp.guidance",
    "GradTTSScheduler": "melinterp.schedulers",
    "GradTTSDPMSolverScheduler": "melinterp.schedulers",
    "TextEncoder": "melinterp.models",
    "StyleEncoder": "melinterp.models",
    "MelUNet2DConditionModel": "melinterp.models",
    "GriffinLimVocoder": "melinterp.models.vocoder",
    "VocosVocoder": "melinterp.models.vocos",
    "HiFiGANGenerator": "melinterp.models.hifigan",
    "TextProcessor": "melinterp.text",
    "TextConfig": "melinterp.text",
    "FeatureConfig": "melinterp.audio",
    "tiny_pipeline": "melinterp.testing",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'melinterp' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
