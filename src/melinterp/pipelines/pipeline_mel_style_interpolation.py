"""`MelStyleInterpolationPipeline`: text + one or two reference recordings -> speech whose voice is interpolated.

The mode is a strategy of `melinterp.guidance.STRATEGIES` ("none", "mix", "temporal", "freq", "dual_noise"; see
DESIGN.md) or a `GuidanceStrategy` object. `__call__` reads as its steps: `check_inputs`, `encode_references`,
`encode_text`, then for each group of equal-length items `prepare_latents` and `denoise` (whose loop makes the
U-Net call, classifier-free guidance and ``scheduler.step``), `decode` and `postprocess`. Saving, loading and the
lock that runs one call at a time are in `melinterp.pipelines.loading`, the references in
`melinterp.pipelines.references`, the sentences of a batch in `melinterp.pipelines.batching`.
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np
import torch
from diffusers.utils.torch_utils import randn_tensor
from torch.nn.utils.rnn import pad_sequence

from melinterp.audio import FeatureConfig
from melinterp.guidance import (
    STRATEGIES,
    Conditioning,
    GuidanceState,
    GuidanceStrategy,
    ModeOptions,
    NoiseTuningConfig,
    PhonemeTiming,
    make_strategy,
)
from melinterp.models.attention_processors import AttentionStore, install_processors
from melinterp.models.length_regulator import durations_from_log, expand_durations
from melinterp.models.style_encoder import StyleEncoder
from melinterp.models.text_encoder import TextEncoder
from melinterp.models.unet_mel import MelUNet2DConditionModel
from melinterp.text import TextProcessor
from melinterp.utils import check_number, check_positive_int

from .batching import TextCanvas, equal_length_groups, in_chunks, sentence_generators, split_texts, text_generators
from .loading import MelinterpPipeline, check_compatible, one_call_at_a_time
from .pipeline_output import MAX_BATCH_FRAMES, MelStyleInterpolationPipelineOutput, RangeCheck
from .references import ReferenceEncoding, References, blend_conditions, encode_reference, encode_references

OUTPUT_TYPES = ("np", "pt", "mel")


class MelStyleInterpolationPipeline(MelinterpPipeline):
    """Diffusion TTS whose voice is interpolated between two references, cell by cell of the mel-spectrogram.

    Args:
        text_encoder: `TextEncoder` (phoneme ids + style vector -> mu_x, log-durations).
        style_encoder: `StyleEncoder` (reference mel -> style tokens + style vector).
        unet: `MelUNet2DConditionModel` (the score model); `MelAttnProcessor`s are installed on it.
        scheduler: a scheduler of `melinterp.schedulers.SCHEDULERS` (`GradTTSScheduler`, `GradTTSDPMSolverScheduler`).
        vocoder: any module log-mel (B, n_mels, T) -> waveform (B, T * hop): `VocosVocoder` (trained; the bundled
            model's), `HiFiGANGenerator` (official checkpoints, `melinterp convert-hifigan`) or `GriffinLimVocoder`
            (no weights, the fallback).
        text_processor: `TextProcessor` (text -> phoneme ids).
        feature_config: `FeatureConfig` (sample rate, STFT and mel settings of the references and the output).
    """

    model_cpu_offload_seq = "text_encoder->style_encoder->unet->vocoder"

    def __init__(self, text_encoder: TextEncoder, style_encoder: StyleEncoder, unet: MelUNet2DConditionModel,
                 scheduler, vocoder: torch.nn.Module, text_processor: TextProcessor,
                 feature_config: FeatureConfig):
        super().__init__()
        check_compatible(text_encoder=text_encoder, style_encoder=style_encoder, unet=unet, vocoder=vocoder,
                         feature_config=feature_config)
        install_processors(unet)  # routing and capture need MelAttnProcessor on every attention layer
        self.register_modules(text_encoder=text_encoder, style_encoder=style_encoder, unet=unet,
                              scheduler=scheduler, vocoder=vocoder, text_processor=text_processor,
                              feature_config=feature_config)

    @one_call_at_a_time
    @torch.no_grad()
    def __call__(
        self,
        text: str | list[str],
        ref1,
        ref2=None,
        mode: str | GuidanceStrategy = "none",
        *,
        alpha: float = 0.5,
        boundary: float | int | str = 0.5,
        crossfade: float = 0.1,
        pitch_mask: str = "band",
        freq_guidance: str = "mask",
        routing_strength: float = 1.0,
        tuning: NoiseTuningConfig | None = None,
        dual_noise_map: str = "freq",
        dual_noise_merge_step: int = 0,
        num_inference_steps: int = 10,
        temperature: float = 1.5,
        guidance_scale: float = 1.0,
        length_scale: float = 1.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        output_type: str = "np",
        return_attention: bool = False,
        callback_on_step_end: Callable | None = None,
        return_dict: bool = True,
        split_sentences: bool = True,
        sentence_pause: float = 0.25,
        max_batch_frames: int | None = MAX_BATCH_FRAMES,
    ) -> MelStyleInterpolationPipelineOutput | tuple:
        """Synthesise `text` in a voice taken from, or interpolated between, `ref1` and `ref2`.

        Args:
            text: a str, or a list of str (a batch).
            ref1, ref2: reference recordings, each a file path, an ``(array, sample_rate)`` pair, a 1-D waveform
                tensor at ``feature_config.sample_rate`` or a `ReferenceEncoding` (`encode_reference`: analysed
                once, reused in many calls); or a list of those, one per text. ref2 is required by
                every mode but "none", and refused by "none".
            mode: a name of `melinterp.guidance.STRATEGIES` ("none", "mix", "temporal", "freq", "dual_noise"),
                made from the mode options below (each checked whatever the mode), or a `GuidanceStrategy` object,
                which brings its own options.
            alpha: mix weight of ref2 in [0, 1] (mode "mix").
            boundary: where temporal routing switches from ref1 to ref2: a float in [0, 1] is a fraction of the
                utterance, an int k a phoneme index (symbol k of ``text_processor.phonemize(text)``), a str such as
                "0.8s" seconds (modes "temporal", and "dual_noise" with ``dual_noise_map="temporal"``). With
                ``split_sentences`` the utterance is each sentence: every sentence of a text switches at its own
                boundary (pass ``split_sentences=False`` for one switch over the whole text).
            crossfade: width of the temporal crossfade, seconds.
            pitch_mask: "band" or "harmonic" (`melinterp.guidance.frequency`).
            freq_guidance: "mask" (routing bias), "noise_tuning" (gradient steps on x_t) or "none" (both
                references' keys, no routing: the ablation baseline), for mode "freq".
            routing_strength: multiplies the routing log-weight bias (> 1 routes harder).
            tuning: `NoiseTuningConfig` for ``freq_guidance="noise_tuning"`` (default: its defaults).
            dual_noise_map: "freq" or "temporal", the map that composes the two scores (mode "dual_noise").
            dual_noise_merge_step: k > 0 starts from two prior samples merged at step k (mode "dual_noise").
            num_inference_steps: denoising steps (score evaluations of the scheduler), >= 1.
            temperature: the prior is mu_y + eps / temperature, > 0.
            guidance_scale: classifier-free guidance against the learned null style; 1 = none.
            length_scale: > 1 speaks slower.
            generator: a torch.Generator, or one per text; each item's noise is drawn from its own generator
                (seeded from the given one), so batching does not change results.
            output_type: "np" or "pt" (waveforms and mels as numpy / torch), or "mel" (no vocoder, audios None).
            return_attention: also return `ref1_mass`, the attention mass on ref1 per mel cell (modes with both
                references' keys; it rides in the fused attention call, so it costs about nothing).
            callback_on_step_end: ``fn(pipe, i, t, {"latents": x}) -> dict | None`` after each step; a returned
                "latents" replaces x. For a batch of different lengths it runs once a step per length group.
            return_dict: return a `MelStyleInterpolationPipelineOutput` rather than a tuple.
            split_sentences: split each text into sentences (`melinterp.text.split_sentences`), synthesise them as
                items of one batch and join each text's sentences back into one output item. Memory is then
                bounded by the longest sentence (items are denoised in groups of equal length). A text of one
                sentence gives exactly what ``split_sentences=False`` gives. Each sentence of a text draws its noise
                from a generator seeded from that text's generator.
            sentence_pause: seconds of silence between joined sentences, >= 0; rounded to whole frames,
                ``round(sentence_pause * sample_rate / hop_length)``, that are ln(log_clamp) in `mels`, zeros in
                `audios` and 0 in the per-cell maps.
            max_batch_frames: frames one U-Net batch holds at most (one item alone may be longer): memory is bounded
                whatever the number of sentences. Waveforms are within [-1, 1]; see also `RangeCheck`.
        """
        # 1. Check inputs and make the strategy; split each text into its sentences: the items of the batch from
        #    here to step 6 are the sentences, text b's being `spans[b]`, each with a generator seeded from its text's
        texts = [text] if isinstance(text, str) else text
        options = ModeOptions(alpha=alpha, boundary=boundary, crossfade=crossfade, pitch_mask=pitch_mask,
                              freq_guidance=freq_guidance, routing_strength=routing_strength, tuning=tuning,
                              dual_noise_map=dual_noise_map, dual_noise_merge_step=dual_noise_merge_step)
        strategy = self.check_inputs(texts, ref1, ref2, mode, options, num_inference_steps, temperature,
                                     guidance_scale, length_scale, output_type, split_sentences, sentence_pause,
                                     max_batch_frames)
        sentences, spans = split_texts(texts, split_sentences)
        generators = sentence_generators(text_generators(generator, len(texts), self._execution_device), spans)

        # 2. Encode the references of each sentence: style tokens, vectors and what the strategy analyses of them
        owners = [b for b, span in enumerate(spans) for _ in span]  # the text of each sentence
        references1, references2 = self.encode_references(ref1, ref2, strategy, len(texts), owners)
        null_style = self.style_encoder.null_style(len(sentences), 1)  # classifier-free guidance's condition

        # 3. Encode the text: phoneme-level prior mean mu_x (B, n_mels, L) and each phoneme's frames
        mu_x, timing = self.encode_text(sentences, strategy, references1, references2, length_scale)

        # 4-6. One group of equal-length items after another: prepare the latents, denoise them (bar: sentence
        #      steps), check the mels against the range of real speech, vocode them; each group's outputs go straight
        #      to their texts' places, so memory holds the outputs once, whatever the number of groups
        hop_length = self.feature_config.hop_length
        canvas = TextCanvas(spans, timing.lengths.tolist(),
                            pause=round(sentence_pause * self.feature_config.sample_rate / hop_length),
                            fills={"mels": float(np.log(self.feature_config.log_clamp))},
                            scales={"audios": hop_length})
        range_check = RangeCheck(self.feature_config)
        with self.progress_bar(total=len(sentences) * num_inference_steps) as progress_bar:
            for items, num_frames in equal_length_groups(timing.lengths, max_batch_frames):
                state = self.guidance_state(items, num_frames, mu_x, timing, references1, references2)
                group_generators = [generators[b] for b in items]
                latents = self.prepare_latents(state.mu_y, group_generators, temperature, strategy.num_trajectories)
                outputs = self.denoise(latents, state, strategy, num_inference_steps, guidance_scale,
                                       null_style.select(items), group_generators, return_attention,
                                       callback_on_step_end, progress_bar)
                range_check.add(outputs["mels"])
                outputs["audios"] = None if output_type == "mel" else self.decode(outputs["mels"])  # (B_g, T * hop)
                canvas.add(items, outputs)
        range_check.warn()

        # 7. Output: each text's sentences joined, a pause apart, the texts padded to the longest
        output = self.postprocess(canvas, output_type)
        self.maybe_free_model_hooks()
        return output if return_dict else (output.audios, output.mels)

    def check_inputs(self, texts, ref1, ref2, mode, options: ModeOptions, num_inference_steps, temperature,
                     guidance_scale, length_scale, output_type, split_sentences, sentence_pause,
                     max_batch_frames=None) -> GuidanceStrategy:
        """The strategy `mode` names (`melinterp.guidance.make_strategy`, which checks the mode options); a
        ValueError naming the first bad argument (text errors are `TextError`s, from `split_texts`)."""
        if not isinstance(texts, (list, tuple)) or not texts:
            raise ValueError(f"text must be a str or a non-empty list of str, got {texts!r:.80}")
        strategy = make_strategy(mode, options)
        label = strategy.name or type(strategy).__name__
        if ref1 is None:
            raise ValueError("ref1 is required: a path, an (array, sample_rate) pair, a waveform tensor or a "
                             "ReferenceEncoding")
        if strategy.num_references == 2 and ref2 is None:
            raise ValueError(f"mode={label!r} interpolates between two voices and needs ref2; for one voice use "
                             f"mode='none'")
        if strategy.num_references == 1 and ref2 is not None:
            two = [name for name, strategy_class in STRATEGIES.items() if strategy_class.num_references == 2]
            raise ValueError(f"ref2 was given but mode={label!r} uses ref1 only: pick a two-reference mode "
                             f"({', '.join(two)}) or leave ref2 out")
        check_positive_int("num_inference_steps", num_inference_steps)
        check_number("temperature", temperature, lambda v: v > 0, "> 0")
        check_number("guidance_scale", guidance_scale, lambda v: True, "a number (1 = no guidance)")
        check_number("length_scale", length_scale, lambda v: v > 0, "> 0 (> 1 speaks slower)")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {', '.join(map(repr, OUTPUT_TYPES))}, got {output_type!r}")
        if not isinstance(split_sentences, bool):
            raise ValueError(f"split_sentences must be True or False, got {split_sentences!r}")
        check_number("sentence_pause", sentence_pause, lambda v: v >= 0, "a pause >= 0 in seconds between sentences")
        if max_batch_frames is not None:
            check_positive_int("max_batch_frames", max_batch_frames, "a positive integer or None")
        return strategy

    def encode_references(self, ref1, ref2, strategy: GuidanceStrategy, num_texts: int,
                          owners: list[int]) -> tuple[References, References | None]:
        """Each sentence's references (its text's): style tokens (B, S, C), token masks (B, S), style vectors
        (B, style_dim), the text encoder's pitch condition (B, 2) and the analyses the strategy reads. ref2 only
        for a two-reference strategy."""
        pitch_dtype = self.text_encoder.dtype if self.text_encoder.config.pitch_dim > 0 else None
        analyses = set(strategy.reference_analyses)
        references = [encode_references(refs, name, num_texts, analyses, self.style_encoder, self.feature_config,
                                        self._execution_device, pitch_dtype).select(owners)
                      for name, refs in (("ref1", ref1), ("ref2", ref2))[: strategy.num_references]]
        return references[0], references[1] if len(references) == 2 else None

    def encode_text(self, sentences: list[str], strategy: GuidanceStrategy, ref1: References, ref2: References | None,
                    length_scale: float) -> tuple[torch.Tensor, PhonemeTiming]:
        """Phonemes -> the prior mean of each phoneme id mu_x (B, n_mels, L) and the phoneme timing (the frames of
        each id: `guidance_state` makes a group's frame-level prior mean mu_y of them).

        The text encoder hears the voice the strategy asks for (`voice_weights`: style vector and pitch condition,
        each a blend of the two references). A strategy whose voice changes in time gets per-phoneme weights from
        this pass's durations (`phoneme_weights`), and then each phoneme's prior mean is the weighted sum of the
        encoder's outputs under ref1 alone and under ref2 alone (blending the outputs, not the conditions, keeps the
        encoder's self-attention from carrying one voice into the other's phonemes); the durations stay these.
        """
        phonemes = self.text_processor.phonemize_batch(sentences)  # TextError names an empty item
        phoneme_ids = [torch.tensor(self.text_processor.encode_phonemes(p)) for p in phonemes]
        ids = pad_sequence(phoneme_ids, batch_first=True).to(self._execution_device)  # (B, L), 0 after each length
        id_lengths = torch.tensor([len(item_ids) for item_ids in phoneme_ids], device=ids.device)  # (B,)

        weights = strategy.voice_weights()
        style_vector = blend_conditions(weights.style, ref1.style.style_vector, ref2 and ref2.style.style_vector)
        pitch = None if ref1.pitch is None else blend_conditions(weights.pitch, ref1.pitch, ref2 and ref2.pitch)
        mu_x, log_durations, x_mask = in_chunks(self.text_encoder)(ids, id_lengths, style_vector, pitch)
        durations = durations_from_log(log_durations, x_mask, length_scale)  # (B, L) frames per phoneme id
        timing = PhonemeTiming(durations, durations.sum(1), [len(p) for p in phonemes],
                               bool(self.text_processor.config.config.add_blank),
                               self.feature_config.sample_rate / self.feature_config.hop_length)
        phoneme_weights = strategy.phoneme_weights(timing)  # (B, L) weight of ref1, or None
        if phoneme_weights is not None:
            weight = phoneme_weights.to(mu_x).unsqueeze(1)  # (B, 1, L)
            mu_x_ref1, mu_x_ref2 = in_chunks(self.text_encoder)(  # both voices, as rows [ref1 ; ref2]
                ids.repeat(2, 1), id_lengths.repeat(2),
                torch.cat([ref1.style.style_vector, ref2.style.style_vector]),
                None if ref1.pitch is None else torch.cat([ref1.pitch, ref2.pitch]),
            )[0].chunk(2)  # (B, n_mels, L) each
            mu_x = weight * mu_x_ref1 + (1.0 - weight) * mu_x_ref2
        return mu_x, timing

    def guidance_state(self, items: list[int], num_frames: int, mu_x: torch.Tensor, timing: PhonemeTiming,
                       ref1: References, ref2: References | None) -> GuidanceState:
        """The inputs of the strategy for one group of items, all `num_frames` long: their prior mean mu_y
        (B_g, n_mels, num_frames), each frame its phoneme's mu_x."""
        ref1, ref2 = ref1.select(items), None if ref2 is None else ref2.select(items)
        timing = timing.select(items)
        y_mask = torch.ones(len(items), 1, num_frames, dtype=self.unet.dtype, device=mu_x.device)  # equal lengths
        mu_y = expand_durations(mu_x[items], timing.durations, y_mask)  # (B_g, n_mels, num_frames)
        return GuidanceState(
            mu_y=mu_y, y_mask=y_mask, ref1=ref1.style,
            ref2=None if ref2 is None else ref2.style, ref1_analyses=ref1.analyses,
            ref2_analyses={} if ref2 is None else ref2.analyses, timing=timing,
            feature_config=self.feature_config, padded_num_frames=self.unet.padded_num_frames(num_frames),
        )

    @staticmethod
    def prepare_latents(mu_y: torch.Tensor, generators: list[torch.Generator], temperature: float,
                        num_trajectories: int = 1) -> torch.Tensor:
        """Prior samples x_1 = mu_y + eps / temperature, (n B, n_mels, T) for n trajectories per item: item b's eps
        drawn from generators[b] at its own size, so a batch draws what its items draw alone."""
        samples = []
        for _ in range(num_trajectories):
            noise = torch.cat([randn_tensor((1, *mu_y.shape[1:]), generator=g, device=mu_y.device, dtype=mu_y.dtype)
                               for g in generators])  # (B, n_mels, T)
            samples.append(mu_y + noise / temperature)
        return torch.cat(samples)

    def denoise(self, latents: torch.Tensor, state: GuidanceState, strategy: GuidanceStrategy,
                num_inference_steps: int, guidance_scale: float, null_style, generators: list[torch.Generator],
                return_attention: bool, callback_on_step_end: Callable | None, progress_bar) -> dict:
        """The denoising loop of one group of B equal-length items (their inputs: `state`).

        `latents` are (n B, n_mels, T) prior samples, n = ``strategy.num_trajectories``, whose rows [:B] become the
        mels; `null_style` is the learned unconditional style of the B items (classifier-free guidance);
        `generators`, one per item, feed a stochastic scheduler. Returns ``{"mels", "routing_map",
        "pitch_mask", "ref1_mass"}``, (B, n_mels, T) each or None where the strategy has no such map (ref1_mass:
        only with ``return_attention`` and keys [ref1 ; ref2]).
        """
        batch_size = state.batch_size
        guidance = strategy.prepare(state)  # conditionings (k B rows), routing map, pitch mask
        capture = None
        if return_attention and strategy.captures_ref1_mass:
            capture = AttentionStore(state.ref1.style_tokens.shape[1], state.padded_size, detach=True)
        unet_score = functools.partial(self.unet_score, state=state)
        unconditional = Conditioning.of(null_style)
        mu = state.mu_y.repeat(strategy.num_trajectories, 1, 1)  # (n B, n_mels, T)
        # a stochastic scheduler's noise: the first trajectory's rows draw from their items' generators, further
        # rows (dual noise's second trajectory) from torch's global generator, as they always have
        noise_generators = generators + [None] * (latents.shape[0] - batch_size)
        self.scheduler.set_timesteps(num_inference_steps, device=latents.device)
        for i, t in enumerate(self.scheduler.timesteps):
            latents = strategy.adjust_latents(state, guidance, latents, t, i, unet_score)  # noise tuning, merging
            scores = unet_score(strategy.model_input(guidance, latents, i), t, guidance.conditioning, capture)
            score = strategy.combine_scores(guidance, scores, i)  # (n B, n_mels, T)
            if guidance_scale != 1.0:  # classifier-free guidance against the null style, of the output's samples
                score_uncond = unet_score(latents[:batch_size], t, unconditional)
                guided = score_uncond + guidance_scale * (score[:batch_size] - score_uncond)
                score = torch.cat([guided, score[batch_size:]])
            latents = self.scheduler.step(score, t, latents, mu, generator=noise_generators).prev_sample
            if callback_on_step_end is not None:  # it sees, and may replace, the samples the output comes from
                shown = (callback_on_step_end(self, i, t, {"latents": latents[:batch_size]}) or {}).get("latents")
                latents = latents if shown is None else torch.cat([shown, latents[batch_size:]])
            progress_bar.update(batch_size)
        ref1_mass = None if capture is None else capture.ref1_mass()[..., : state.num_frames]  # (B, n_mels, T)
        return {"mels": latents[:batch_size], "routing_map": guidance.routing_map,
                "pitch_mask": guidance.pitch_mask, "ref1_mass": ref1_mass}

    def unet_score(self, latents: torch.Tensor, t: torch.Tensor, conditioning: Conditioning,
                   capture: AttentionStore | None = None, *, state: GuidanceState) -> torch.Tensor:
        """The U-Net's score (k B, n_mels, T) of samples (k B, n_mels, T) at time t in (0, 1], under a
        conditioning of k B rows; `capture` records the ref1 mass of this call."""
        repeats = latents.shape[0] // state.batch_size
        kwargs = conditioning.cross_attention_kwargs
        if capture is not None:
            kwargs = {**(kwargs or {}), "capture": capture}
        sample = torch.stack([latents, state.mu_y.repeat(repeats, 1, 1)], dim=1)  # (k B, 2, n_mels, T)
        timestep = (t * 1000).to(latents.dtype).expand(latents.shape[0])  # diffusers' scale: t * 1000
        return self.unet(
            sample, timestep, encoder_hidden_states=conditioning.style_tokens,
            encoder_attention_mask=conditioning.attention_mask, class_labels=conditioning.style_vector,
            mask=state.y_mask.repeat(repeats, 1, 1), cross_attention_kwargs=kwargs,
        ).sample[:, 0]

    def decode(self, mels: torch.Tensor) -> torch.Tensor:
        """Log-mels (B, n_mels, T) -> waveforms (B, T * hop) in [-1, 1] by the vocoder."""
        # real audio's log-mels lie within +-ln(log_clamp); exp() of a diverging model's would overflow the vocoder
        log_floor = float(np.log(self.feature_config.log_clamp))
        return self.vocoder(mels.clamp(log_floor, -log_floor)).clamp(-1.0, 1.0)

    def postprocess(self, canvas: TextCanvas, output_type: str) -> MelStyleInterpolationPipelineOutput:
        """The texts' outputs of `canvas` (`denoise`'s, and "audios" (B_text, T * hop) or None) as the pipeline's
        output, numpy unless `output_type` is "pt"."""
        outputs = canvas.outputs
        lengths = torch.tensor(canvas.lengths, device=self._execution_device)  # (B_text,) frames
        if output_type != "pt":
            outputs = {name: None if v is None else v.float().cpu().numpy() for name, v in outputs.items()}
            lengths = lengths.cpu().numpy()
        return MelStyleInterpolationPipelineOutput(lengths=lengths, sample_rate=int(self.feature_config.sample_rate),
                                                   **outputs)

    @torch.no_grad()
    def encode_reference(self, ref) -> ReferenceEncoding:
        """Analyse one reference recording (a file path, an ``(array, sample_rate)`` pair or a 1-D waveform tensor at
        the feature sample rate) for reuse: ``enc = pipe.encode_reference("a.wav")``, then ``pipe(text, enc, ...)``
        gives exactly what ``pipe(text, "a.wav", ...)`` gives, without redoing the work. The `ReferenceEncoding` is
        on the pipeline's device and dtype (and moved to them when used, if they change)."""
        return encode_reference(ref, self.style_encoder, self.feature_config, self._execution_device)
