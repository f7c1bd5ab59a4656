"""How the texts of a pipeline call become a batch of sentences, and the sentences' outputs texts again.

- `split_texts`: every text split into its sentences (`melinterp.text.split_sentences`), all in one flat list.
- `text_generators` and `sentence_generators`: one torch.Generator per text, seeded from the caller's, and one per
  sentence, seeded from its text's; so an item's noise never depends on the other items of the batch.
- `equal_length_groups`: the items denoised together (the U-Net's GroupNorm statistics span the whole image, so
  padding one item to another's length would change it), at most ``max_batch_frames`` frames a group.
- `in_chunks`: a model applied to a few sentences at a time, as many as a budget of attention cells allows (the text
  encoder's self-attention is (B, heads, L, L): 90 sentences of 600 phoneme ids at once took 1.2 GB).
- `TextCanvas`: each text's sentences laid out in time, a pause apart, the texts padded to the longest; a group's
  outputs are written in as soon as they are made, so the outputs are held once, whatever the number of groups.
"""

from __future__ import annotations

import torch

from melinterp.text import split_sentences
from melinterp.text.errors import check_text

TEXT_ENCODER_CELLS = 8 * 256**2  # rows x (padded phoneme ids)^2 of one text-encoder call: 8 sentences of 256 ids


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


class TextCanvas:
    """Each text's outputs (B_text, ..., num_frames): its sentences in order, ``pause`` frames of fill between two,
    the texts padded with fill to the longest; filled group by group as the sentences are made.

    Args:
        spans: text b's sentences are ``spans[b]`` (indices into `lengths`).
        lengths: frames of each sentence.
        pause: frames between two sentences of a text.
        fills: output name -> its fill value (others fill with 0.0).
        scales: output name -> samples per frame of its time axis (others 1: "audios" is hop_length).
    """

    def __init__(self, spans: list[range], lengths: list[int], pause: int, fills: dict[str, float] | None = None,
                 scales: dict[str, int] | None = None):
        self.fills, self.scales = fills or {}, scales or {}
        self.texts, self.offsets = [0] * len(lengths), [0] * len(lengths)  # each sentence's text and first frame
        text_lengths = []
        for b, span in enumerate(spans):
            start = 0
            for k in span:
                self.texts[k], self.offsets[k] = b, start
                start += lengths[k] + pause
            text_lengths.append(start - pause)
        self.lengths = text_lengths  # frames of each text
        self.num_frames = max(text_lengths)
        self.outputs: dict[str, torch.Tensor | None] = {}

    def add(self, items: list[int], outputs: dict[str, torch.Tensor | None]) -> None:
        """Write the outputs (B_g, ..., T_g * scale) of the sentences `items` (None: an output the mode does not
        make) at their places."""
        for name, values in outputs.items():
            if values is None:
                self.outputs.setdefault(name, None)
                continue
            scale = self.scales.get(name, 1)
            if self.outputs.get(name) is None:
                self.outputs[name] = values.new_full((len(self.lengths), *values.shape[1:-1],
                                                      self.num_frames * scale), self.fills.get(name, 0.0))
            canvas = self.outputs[name]
            for j, k in enumerate(items):
                start = self.offsets[k] * scale
                canvas[self.texts[k], ..., start: start + values.shape[-1]] = values[j]


def in_chunks(function, cells: int = TEXT_ENCODER_CELLS):
    """`function` applied to as many rows of its tensor arguments (None passes as None) at a time as
    ``rows * L**2 <= cells`` allows, L the padded length of the first argument (at least one row a call), its tuple
    of outputs concatenated along the batch: what one call gives, with memory bounded by `cells` (or one row)."""
    def chunked(*batched):
        total, length = batched[0].shape[0], max(1, batched[0].shape[-1])
        size = max(1, cells // length**2)
        if total <= size:
            return function(*batched)
        parts = [function(*(None if x is None else x[start:start + size] for x in batched))
                 for start in range(0, total, size)]
        return tuple(torch.cat(outputs) for outputs in zip(*parts))
    return chunked
