"""`UsualFileModesMixin`: ``save_pretrained`` whose weight files get the permissions ordinary files get.

diffusers writes weights with ``safetensors.torch.save_file``, which (since safetensors 0.8) writes a 0600 temporary
file and renames it into place, so the weights of a saved model were readable by their owner only, beside a 0644
``config.json``. Every melinterp model puts this mixin before its diffusers base class.
"""

from __future__ import annotations

import os
from pathlib import Path

from diffusers.utils import SAFETENSORS_WEIGHTS_NAME

from melinterp.utils import new_file_mode, usual_mode

# diffusion_pytorch_model.safetensors, its variants (.fp16) and shards (-00001-of-00002)
_WEIGHT_FILES = f"{Path(SAFETENSORS_WEIGHTS_NAME).stem}*.safetensors"


class UsualFileModesMixin:
    """Gives the weight files ``save_pretrained`` writes the mode ``open(path, "w")`` would: a file it replaces
    keeps that file's mode, a new one gets 0o666 less the umask."""

    def save_pretrained(self, save_directory: str | os.PathLike, *args, **kwargs) -> None:
        folder = Path(save_directory)
        replaced = {path: usual_mode(path) for path in folder.glob(_WEIGHT_FILES)}
        super().save_pretrained(save_directory, *args, **kwargs)
        for path in folder.glob(_WEIGHT_FILES):
            os.chmod(path, replaced.get(path, new_file_mode()))
