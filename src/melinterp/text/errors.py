"""The text front end's error type and the input check every entry point shares."""

from __future__ import annotations


class TextError(ValueError):
    """Text, phonemes or ids that the front end cannot turn into model input; the message says why."""


def check_text(text: object, where: str = "") -> str:
    """Return ``text`` if it is a non-blank ``str``, else raise :class:`TextError`.

    ``where`` (e.g. ``" (item 3 of the batch)"``) is appended to the message so a batch error points at its item.
    """
    if not isinstance(text, str):
        raise TextError(f"text must be a str, got {type(text).__name__}{where}: {text!r:.80}")
    if not text.strip():
        raise TextError(f"text is empty{where} (got {text!r}): give at least one word to speak")
    return text
