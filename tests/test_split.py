"""Long input: `split_sentences` on known texts, and the pipeline synthesising a text's sentences as a batch and
joining them with pauses (tiny random pipeline)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import harmonic_tone

from melinterp import tiny_pipeline
from melinterp.text import MAX_CHUNK_CHARS, TextError, split_long_sentence, split_sentences

# ---------------------------------------------------------------------------------------------------------------
# split_sentences
# ---------------------------------------------------------------------------------------------------------------

SPLITS = [
    ("Hello world.", ["Hello world."]),
    ("one sentence without an end", ["one sentence without an end"]),
    ("", []),
    ("   \n ", []),
    ("  Hello there.   How are you?  ", ["Hello there.", "How are you?"]),
    ("Really?! Yes! No? 42 is the answer.", ["Really?!", "Yes!", "No?", "42 is the answer."]),
    ("Mr. Smith met Dr. Jones on St. Mary's day. They talked.",
     ["Mr. Smith met Dr. Jones on St. Mary's day.", "They talked."]),
    ("Fruit, e.g. Apples, i.e. Red ones. Done.", ["Fruit, e.g. Apples, i.e. Red ones.", "Done."]),
    ("J. R. R. Tolkien wrote it. The U.S. Army read it.", ["J. R. R. Tolkien wrote it.", "The U.S. Army read it."]),
    ("It costs 3.5 dollars. Pi is 3.14159.", ["It costs 3.5 dollars.", "Pi is 3.14159."]),
    ("He paid $3.50. Then he left.", ["He paid $3.50.", "Then he left."]),
    ("Well... I think so. Wait… Maybe not.", ["Well... I think so.", "Wait… Maybe not."]),
    ('She said "Stop!" Then he ran.', ['She said "Stop!"', "Then he ran."]),
    ('He left. "Wait," she said. (It rained.) Then', ["He left.", '"Wait," she said.', "(It rained.)", "Then"]),
    ('"Why?" he asked. Nobody knew.', ['"Why?" he asked.', "Nobody knew."]),
    ("See No. 5 on Jan. 3 please. I said no. Then left.", ["See No. 5 on Jan. 3 please.", "I said no.", "Then left."]),
    ("Apples, pears, etc. Then we ate. We met at 5 p.m. Then slept.",
     ["Apples, pears, etc.", "Then we ate.", "We met at 5 p.m.", "Then slept."]),
    ("Wait; not here: there. Yes.", ["Wait; not here: there.", "Yes."]),
    ("First line.\nSecond line.", ["First line.", "Second line."]),
    ("Über alles. Élan vital. lower case. stays", ["Über alles.", "Élan vital. lower case. stays"]),
]


@pytest.mark.parametrize("text, sentences", SPLITS, ids=[t[:30] or "empty" for t, _ in SPLITS])
def test_split_sentences_known_cases(text, sentences):
    assert split_sentences(text) == sentences


def test_split_sentences_refuses_non_str():
    with pytest.raises(TypeError, match="text must be a str, got int"):
        split_sentences(3)


# ---------------------------------------------------------------------------------------------------------------
# Long sentences: cut at clauses, else between words, into bounded pieces
# ---------------------------------------------------------------------------------------------------------------

WORDS = "the quick brown fox jumps over a lazy dog while seven red apples fall under old bridges".split()


def words_without_punctuation(count: int, seed: int = 0) -> str:
    return " ".join(np.random.default_rng(seed).choice(WORDS, size=count))


def test_400_words_without_punctuation_split_into_even_bounded_chunks():
    text = words_without_punctuation(400)
    chunks = split_sentences(text)
    assert all(len(chunk) <= MAX_CHUNK_CHARS for chunk in chunks)
    assert " ".join(chunks) == text  # every word, in order, none cut
    assert len(chunks) > 1 and all(len(a) + 1 + len(b) > MAX_CHUNK_CHARS for a, b in zip(chunks, chunks[1:]))
    lengths = [len(chunk) for chunk in chunks]
    assert max(lengths) - min(lengths) <= max(map(len, WORDS)) + 1  # even: no short remnant at the end


def test_a_long_sentence_is_cut_at_its_clauses():
    clauses = [f"{words_without_punctuation(12, seed)}{mark}" for seed, mark in enumerate(",;:,,")]
    sentence = " ".join(clauses) + " " + words_without_punctuation(12, 9) + "."
    chunks = split_sentences(sentence, max_chars=200)
    assert len(sentence) > 200 and all(len(chunk) <= 200 for chunk in chunks)
    assert " ".join(chunks) == sentence
    assert all(chunk[-1] in ",;:." for chunk in chunks)  # every cut follows a clause end


@pytest.mark.parametrize("sentence, max_chars, pieces", [
    ("We came, we saw, and then we left again", 20, ["We came, we saw,", "and then we", "left again"]),
    ("He left—quickly and then — slowly", 20, ["He left—", "quickly and then —", "slowly"]),
    ("one two -- three four - five six", 20, ["one two --", "three four -", "five six"]),
    ("It cost 1,000,000 dollars in all", 20, ["It cost 1,000,000", "dollars in all"]),  # no clause end in a number
    ("x" * 25 + " ab", 10, ["x" * 10, "x" * 10, "xxxxx ab"]),  # a run without spaces is cut where it must be
    ("  short enough  ", 20, ["short enough"]),
])
def test_split_long_sentence_known_cases(sentence, max_chars, pieces):
    assert split_long_sentence(sentence, max_chars) == pieces


def test_the_bound_can_be_changed_or_lifted():
    text = words_without_punctuation(100)
    assert all(len(chunk) <= 80 for chunk in split_sentences(text, max_chars=80))
    assert split_sentences(text, max_chars=None) == [text]
    for bad in (0, -5, 2.5, True, "300"):
        with pytest.raises(ValueError, match="max_chars must be a positive number of characters or None"):
            split_sentences(text, max_chars=bad)


# ---------------------------------------------------------------------------------------------------------------
# The pipeline: split, synthesise as a batch, join
# ---------------------------------------------------------------------------------------------------------------

SR = 22050
STEPS = 2
REF1 = (harmonic_tone(150.0, 0.5), SR)
REF2 = (harmonic_tone(300.0, 0.5), SR)
FIRST, SECOND = "Hello world.", "A second sentence here."
TWO_SENTENCES = f"{FIRST} {SECOND}"
PAUSE = 0.25


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline()


@pytest.fixture(scope="module")
def sentence_lengths(pipe):
    """Frames of each sentence alone: durations depend on text and voice, not on the noise."""
    out = pipe([FIRST, SECOND], REF1, num_inference_steps=1, output_type="mel", generator=seeded(0))
    return [int(n) for n in out.lengths]


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def pause_frames(pipe, seconds: float = PAUSE) -> int:
    return round(seconds * pipe.feature_config.sample_rate / pipe.feature_config.hop_length)


def test_two_sentences_give_one_item_of_both_lengths_plus_the_pause(pipe, sentence_lengths):
    def zero_latents(pipeline, i, t, tensors):  # every sentence's mel becomes exactly 0: the pause is what is left
        return {"latents": torch.zeros_like(tensors["latents"])}

    first, second = sentence_lengths
    pause = pause_frames(pipe)
    assert pause == 22  # 0.25 s * 22050 Hz / 256 samples a frame = 21.5 -> 22
    out = pipe(TWO_SENTENCES, REF1, num_inference_steps=STEPS, generator=seeded(0), sentence_pause=PAUSE,
               callback_on_step_end=zero_latents)
    hop = pipe.feature_config.hop_length
    assert out.lengths.tolist() == [first + pause + second]
    assert out.mels.shape == (1, 80, first + pause + second)
    assert out.audios.shape == (1, (first + pause + second) * hop)
    silence = np.float32(np.log(pipe.feature_config.log_clamp))
    assert np.all(out.mels[0, :, :first] == 0) and np.all(out.mels[0, :, first + pause:] == 0)
    assert np.all(out.mels[0, :, first:first + pause] == silence)
    assert np.all(out.audios[0, first * hop:(first + pause) * hop] == 0)
    assert np.abs(out.audios[0, :first * hop]).max() > 0 and np.abs(out.audios[0, (first + pause) * hop:]).max() > 0


def test_no_pause_and_no_split(pipe, sentence_lengths):
    no_pause = pipe(TWO_SENTENCES, REF1, num_inference_steps=1, generator=seeded(0), sentence_pause=0.0,
                    output_type="mel")
    assert no_pause.lengths.tolist() == [sum(sentence_lengths)]
    whole = pipe(TWO_SENTENCES, REF1, num_inference_steps=1, generator=seeded(0), split_sentences=False,
                 output_type="mel")
    assert whole.lengths[0] != no_pause.lengths[0]  # one utterance: its own durations, no seam


def test_single_sentence_is_bit_identical_to_no_split(pipe):
    text = f"  {FIRST}  "  # synthesised as written: no stripping either
    kwargs = dict(mode="temporal", num_inference_steps=STEPS, return_attention=True, output_type="np")
    split = pipe(text, REF1, REF2, generator=seeded(3), **kwargs)
    whole = pipe(text, REF1, REF2, generator=seeded(3), split_sentences=False, **kwargs)
    for name in ("audios", "mels", "lengths", "routing_map", "ref1_mass"):
        np.testing.assert_array_equal(getattr(split, name), getattr(whole, name), err_msg=name)


def test_batch_of_texts_with_two_and_one_sentences_equals_single_calls(pipe):
    """Each text is joined from its own sentences; temporal routing switches voice in every sentence."""
    texts = [TWO_SENTENCES, "A longer single sentence, to speak slowly."]
    kwargs = dict(mode="temporal", boundary=0.5, crossfade=0.0, num_inference_steps=STEPS, return_attention=True,
                  sentence_pause=0.1, output_type="mel")  # joined audio: test_two_sentences_give_one_item...
    batch = pipe(texts, [REF1, REF2], [REF2, REF1], generator=[seeded(1), seeded(2)], **kwargs)
    singles = [pipe(texts[0], REF1, REF2, generator=seeded(1), **kwargs),
               pipe(texts[1], REF2, REF1, generator=seeded(2), **kwargs)]
    # the durations of a temporal voice (a blend of both references) are those of each sentence alone
    first, second = pipe([FIRST, SECOND], REF1, REF2, mode="temporal", num_inference_steps=1, output_type="mel",
                         split_sentences=False).lengths.tolist()
    pause = pause_frames(pipe, 0.1)
    assert batch.lengths.tolist() == [first + pause + second, int(singles[1].lengths[0])]
    silence = np.float32(np.log(pipe.feature_config.log_clamp))
    for b, single in enumerate(singles):
        (length,) = single.lengths
        np.testing.assert_allclose(batch.mels[b, :, :length], single.mels[0], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(batch.ref1_mass[b, :, :length], single.ref1_mass[0], rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(batch.routing_map[b, :, :length], single.routing_map[0])
        assert np.all(batch.mels[b, :, length:] == silence)
    # per sentence: ref1 (1) before each sentence's half, ref2 (0) after; the pause is 0
    routing = batch.routing_map[0, 0]  # (T,) the same in every mel bin
    assert routing[0] == 1 and routing[first - 1] == 0
    assert np.all(routing[first:first + pause] == 0) and np.all(batch.ref1_mass[0, :, first:first + pause] == 0)
    assert routing[first + pause] == 1 and routing[first + pause + second - 1] == 0


def test_a_long_sentence_is_synthesised_as_its_bounded_chunks(pipe):
    """The pipeline takes `split_sentences`' pieces as it takes sentences: one item each, joined with pauses."""
    text = words_without_punctuation(120)
    chunks = split_sentences(text)
    assert len(text) > 2 * MAX_CHUNK_CHARS and len(chunks) == 3
    out = pipe(text, REF1, num_inference_steps=1, generator=seeded(0), output_type="mel")
    alone = pipe(chunks, REF1, num_inference_steps=1, split_sentences=False, output_type="mel").lengths.tolist()
    assert out.lengths.tolist() == [sum(alone) + 2 * pause_frames(pipe)]


def test_sentences_of_a_text_get_different_noise(pipe):
    out = pipe("Hello world. Hello world.", REF1, num_inference_steps=1, generator=seeded(0), sentence_pause=0.0,
               output_type="mel")
    half = int(out.lengths[0]) // 2
    assert np.abs(out.mels[0, :, :half] - out.mels[0, :, half:]).max() > 1e-2


@pytest.mark.parametrize("mode, kwargs", [("freq", {}), ("dual_noise", {"dual_noise_merge_step": 1})])
def test_two_sentences_in_other_modes_join_their_maps(pipe, mode, kwargs):
    out = pipe(TWO_SENTENCES, REF1, REF2, mode=mode, num_inference_steps=1, generator=seeded(0), output_type="mel",
               **kwargs)
    first, second = pipe([FIRST, SECOND], REF1, REF2, mode=mode, num_inference_steps=1, output_type="mel",
                         split_sentences=False, **kwargs).lengths.tolist()
    pause = pause_frames(pipe)
    assert out.lengths.tolist() == [first + pause + second]
    for per_cell in (out.routing_map, out.pitch_mask):
        assert per_cell.shape == (1, 80, first + pause + second)
        assert np.all(per_cell[0, :, first:first + pause] == 0) and per_cell[0, :, first + pause:].max() > 0


@pytest.mark.parametrize("kwargs, message", [
    ({"sentence_pause": -0.1}, r"sentence_pause must be a pause >= 0 in seconds between sentences, got -0.1"),
    ({"sentence_pause": "0.25"}, r"sentence_pause must be a pause >= 0 in seconds between sentences, got '0.25'"),
    ({"sentence_pause": float("nan")}, r"sentence_pause must be a pause >= 0"),
    ({"split_sentences": "yes"}, r"split_sentences must be True or False, got 'yes'"),
])
def test_bad_split_arguments(pipe, kwargs, message):
    with pytest.raises(ValueError, match=message):
        pipe(TWO_SENTENCES, REF1, num_inference_steps=1, **kwargs)


def test_errors_name_the_text_not_the_sentence(pipe):
    with pytest.raises(TextError, match=r"text is empty \(item 1 of the batch\)"):
        pipe([TWO_SENTENCES, "  "], REF1, num_inference_steps=1)
    with pytest.raises(ValueError, match="ref1 is a list of 3 references but there are 2 texts"):
        pipe([TWO_SENTENCES, FIRST], [REF1, REF1, REF1], num_inference_steps=1)
    with pytest.raises(ValueError, match="generator is a list of 3 but there are 2 texts"):
        pipe([TWO_SENTENCES, FIRST], REF1, generator=[seeded(0)] * 3, num_inference_steps=1)
