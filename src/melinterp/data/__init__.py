"""Data: filelists, the feature cache (``melinterp preprocess``), the training dataset and its collate function.

The corpus generator (``melinterp make-corpus``) lives in ``melinterp.data.corpus`` and is not imported here.
"""

from melinterp.data.dataset import (
    SpeechStyleCollate,
    SpeechStyleDataset,
    collate_fn,
    read_speakers,
    sequence_mask,
    write_speakers,
)
from melinterp.data.features import CacheBuildReport, FeatureCache, build_cache
from melinterp.data.filelists import Utterance, read_filelist, write_filelist

__all__ = [
    "CacheBuildReport",
    "FeatureCache",
    "SpeechStyleCollate",
    "SpeechStyleDataset",
    "Utterance",
    "build_cache",
    "collate_fn",
    "read_filelist",
    "read_speakers",
    "sequence_mask",
    "write_filelist",
    "write_speakers",
]
