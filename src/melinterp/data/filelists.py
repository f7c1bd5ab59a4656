"""Filelists: the ``wav_path|speaker|text`` text files that name a corpus split.

The format is the Grad-TTS / LibriTTS one, one utterance a line, UTF-8::

    # comments and blank lines are skipped
    wavs/espeak-m1/0001.wav|espeak-m1|The quick brown fox.
    /abs/path/to/0002.wav|flite-slt|A line may hold "|" in its text: only the first two are separators.

Relative wav paths are resolved against the folder holding the filelist, so a corpus folder can be moved or
copied as a whole.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from melinterp.utils import atomic_path, read_text_file

SEPARATOR = "|"


@dataclass(frozen=True)
class Utterance:
    """One line of a filelist.

    Args:
        wav_path: absolute path of the recording.
        speaker: speaker (voice) name; utterances of one speaker share a style.
        text: what is said, as written (not normalised, not phonemised).
        line: 1-based line number in ``filelist`` (0 when the utterance was not read from a file).
        filelist: the filelist it was read from, for error messages; ``None`` when built in code.
    """

    wav_path: Path
    speaker: str
    text: str
    line: int = 0
    filelist: Path | None = None

    def __post_init__(self):
        if not Path(self.wav_path).is_absolute():
            raise ValueError(f"Utterance.wav_path must be absolute, got {str(self.wav_path)!r}")
        object.__setattr__(self, "wav_path", Path(self.wav_path))

    @property
    def origin(self) -> str:
        """Where the utterance came from, as ``filelist:line`` (or the wav path when built in code)."""
        if self.filelist is None:
            return str(self.wav_path)
        return f"{self.filelist}:{self.line}"


def read_filelist(path: str | os.PathLike) -> list[Utterance]:
    """Read a ``wav_path|speaker|text`` filelist.

    Raises:
        FileNotFoundError: the filelist does not exist.
        ValueError: a line does not have three non-empty fields (names the file and line), the file is not
            UTF-8, or it holds no utterance.
    """
    path = Path(os.path.abspath(path))
    if not path.is_file():
        raise FileNotFoundError(f"filelist not found: {path}")
    content = read_text_file(path, "filelist")

    utterances = []
    for line_number, line in enumerate(content.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = [field.strip() for field in line.split(SEPARATOR, maxsplit=2)]
        if len(fields) != 3 or not all(fields):
            raise ValueError(
                f"{path}:{line_number}: expected 'wav_path|speaker|text' with three non-empty fields, "
                f"got {line.strip()!r}"
            )
        wav_path, speaker, text = fields
        utterances.append(
            Utterance(wav_path=Path(os.path.abspath(path.parent / wav_path)), speaker=speaker, text=text,
                      line=line_number, filelist=path)
        )
    if not utterances:
        raise ValueError(f"{path}: filelist holds no utterance (only blank lines or comments)")
    return utterances


def write_filelist(path: str | os.PathLike, utterances: Iterable[Utterance],
                   relative_to: str | os.PathLike | None = None) -> Path:
    """Write utterances as a ``wav_path|speaker|text`` filelist, atomically (temp file, then rename).

    Args:
        path: the filelist to write (its folder is created if needed).
        utterances: what to write, in order.
        relative_to: write wav paths relative to this folder; ``None`` writes absolute paths. The reader
            resolves relative paths against the filelist's own folder, so pass ``Path(path).parent`` for a
            filelist that moves with its corpus.

    Returns:
        The path written.

    Raises:
        ValueError: a field holds a newline, a speaker or wav path holds ``|``, or a field is empty.
    """
    path = Path(path)
    lines = []
    for utterance in utterances:
        wav_path = utterance.wav_path
        if relative_to is not None:
            wav_path = Path(os.path.relpath(wav_path, os.path.abspath(relative_to)))
        fields = {"wav_path": wav_path.as_posix(), "speaker": utterance.speaker, "text": utterance.text}
        for name, value in fields.items():
            if not value.strip() or "\n" in value or "\r" in value:
                raise ValueError(f"{utterance.origin}: {name} must be non-empty and on one line, got {value!r}")
            if name != "text" and SEPARATOR in value:
                raise ValueError(f"{utterance.origin}: {name} must not contain {SEPARATOR!r}, got {value!r}")
        lines.append(SEPARATOR.join(fields.values()) + "\n")

    with atomic_path(path) as temp_path:
        temp_path.write_text("".join(lines), encoding="utf-8", newline="\n")
    return path
