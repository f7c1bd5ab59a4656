"""How the texts of a pipeline call become a batch of sentences, and the sentences' outputs texts again.

- `split_texts`: every text split into its sentences (`melinterp.text.split_sentences`), all in one flat list.
- `text_generators` and `sentence_generators`: one torch.Generator per text, seeded from the caller's, and one per
  sentence, seeded from its text's; so an item's noise never depends on the other items of the batch.
- `equal_length_groups`: the items denoised together (the U-Net's GroupNorm statistics span the whole image, so
  padding one item to another's length would change it), at most ``max_batch_frames`` frames a group.
- `in_chunks`: a model applied to a few sentences at a time (the text encoder's self-attention is (B, heads, L, L):
  90 sentences of 600 phoneme ids at once took 1.2 GB).
- `join_texts`: each text's sentences joined in time, a pause apart, and the texts padded to the longest.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from melinterp.text import split_sentences
from melinterp.text.errors import check_text

TEXT_ENCODER_BATCH = 8  # sentences one text-encoder call holds at most


def split_texts(texts: list[str], split: bool) -> tuple[list[str], list[range]]:
    """(sentences, spans): every text's sentences in one flat list, and text b's as ``sentences[spans[b]]``.

    A text of one sentence (or any text when `split` is False) stays as written, so it is synthesised exactly as
    without splitting. Raises `TextError` naming the text if one is not a str or is blank.
    """
    sentences, spans = [], []
    for b, text in enumerate(texts):
        check_text(text, f" (item {b} of the batch)" if len(texts) > 1 else "")
        pieces = split_sentences(text) if split else []
        if len(pieces) < 2:
            pieces = [text]
        spans.append(range(len(sentences), len(sentences) + len(pieces)))
        sentences.extend(pieces)
    return sentences, spans


def text_generators(generator, num_texts: int, device) -> list[torch.Generator]:
    """One generator per text on `device`, each seeded from the given generator(s) (or torch's global one)."""
    if isinstance(generator, list):
        if len(generator) != num_texts:
            raise ValueError(f"generator is a list of {len(generator)} but there are {num_texts} texts")
        sources = generator
    else:
        sources = [generator] * num_texts
    for b, source in enumerate(sources):
        if source is not None and not isinstance(source, torch.Generator):
            where = f"generator[{b}]" if isinstance(generator, list) else "generator"
            raise ValueError(f"generator must be a torch.Generator or a list of them, one per text (e.g. "
                             f"torch.Generator().manual_seed(0)), but {where} is a {type(source).__name__}")
    return [_spawn(source, device) for source in sources]


def sentence_generators(generators: list[torch.Generator], spans: list[range]) -> list[torch.Generator]:
    """One generator per sentence: a text of one sentence keeps its own, a longer one seeds one per sentence."""
    return [generator if len(span) == 1 else _spawn(generator, generator.device)
            for generator, span in zip(generators, spans) for _ in span]


def _spawn(source: torch.Generator | None, device) -> torch.Generator:
    """A generator on `device` seeded by one draw from `source` (torch's global generator when None)."""
    draw_device = source.device if source is not None else torch.device("cpu")
    seed = int(torch.randint(0, 2**62, (1,), generator=source, device=draw_device))
    return torch.Generator(device=device).manual_seed(seed)


def equal_length_groups(lengths: torch.Tensor, max_frames: int | None = None) -> list[tuple[list[int], int]]:
    """[(items, T)] with the items of each length T, in order of first appearance; with `max_frames`, a length's
    items are cut into groups of at most ``max(1, max_frames // T)``, so no group holds more than `max_frames`
    frames in all unless one item alone is longer (memory is then bounded by the longest item, not the batch)."""
    groups: dict[int, list[int]] = {}
    for b, length in enumerate(lengths.tolist()):
        groups.setdefault(int(length), []).append(b)
    return [(items[start:start + size], length) for length, items in groups.items()
            for size in [len(items) if max_frames is None else max(1, max_frames // length)]
            for start in range(0, len(items), size)]


def join_texts(per_item: list[torch.Tensor | None], spans: list[range], pause: int, fill: float,
               num_frames: int | None = None) -> torch.Tensor | None:
    """Each text's sentences (..., T_k) joined in time, ``pause`` steps of ``fill`` between each two, and the texts
    stacked, padded with ``fill`` to ``num_frames`` (default: the longest): (B_text, ..., num_frames).

    None when any item is None (an output the mode does not make).
    """
    if any(item is None for item in per_item):
        return None
    texts = []
    for span in spans:
        pieces = [per_item[b] for b in span]
        gap = pieces[0].new_full((*pieces[0].shape[:-1], pause), fill)
        joined = [pieces[0]]
        for piece in pieces[1:]:
            joined += [gap, piece]
        texts.append(torch.cat(joined, dim=-1) if len(pieces) > 1 else pieces[0])
    num_frames = max(text.shape[-1] for text in texts) if num_frames is None else num_frames
    return torch.stack([F.pad(text, (0, num_frames - text.shape[-1]), value=fill) for text in texts])


def in_chunks(function, size: int = TEXT_ENCODER_BATCH):
    """`function` applied to at most `size` items (rows of its tensor arguments; None passes as None) at a time,
    its tuple of outputs concatenated along the batch: what one call gives, with memory bounded by `size` items."""
    def chunked(*batched):
        total = batched[0].shape[0]
        if total <= size:
            return function(*batched)
        parts = [function(*(None if x is None else x[start:start + size] for x in batched))
                 for start in range(0, total, size)]
        return tuple(torch.cat(outputs) for outputs in zip(*parts))
    return chunked
