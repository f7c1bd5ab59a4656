"""A narrow HiFi-GAN cut out of a wide one: the student of a distillation starts from its teacher's own channels.

A HiFi-GAN generator is a chain of channel streams: ``conv_pre``'s output (C channels), then after each upsampler
``ups.i`` a stream of C / 2^(i+1) channels that the stage's residual blocks read and add to, which the next
upsampler (or ``conv_post``) reads. `prune_hifigan` keeps, in every stream, the channels that carry most of what
the next layer hears, slices every convolution to them, and refits each convolution in closed form to the
teacher's outputs at the kept channels, so a V1 (C = 512, 13.9 M parameters) becomes a generator of the same
layout at any narrower C (192: 2.0 M; 128: the authors' V2).

A channel's importance is its mean absolute activation on calibration mels times the L2 norm of the next layer's
weights that read it (what it contributes to the next layer's input, to first order). Within a stage the residual
blocks' inner channels are the stream's own (each block adds to the stream), so one set of indices serves the
upsampler's outputs, every residual convolution's inputs and outputs, and the next layer's inputs.

Measured on the official universal V1 (``examples/training/prune_hifigan.py``, 30 calibration mels of 100 frames,
scored on 30 other recordings' mels): mel L1 of the output to its input 1.76 at 192 channels and 1.77 at 128,
against 6.0 for random weights and 0.31 for the teacher. A head start, not a shortcut: distilled with the GAN's
losses (run 9 of the model card), the cuts were no nearer the recordings after 2,000 steps than a V2 trained from
random weights. With ``resblock_kernel_sizes=(3,)`` (V1's kernel-3 block of each stage alone, a fifth of the
three's CPU time) at 320 channels the cut starts at 4.05.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from melinterp.models.hifigan import LRELU_SLOPE, HiFiGANGenerator, ResBlock1
from melinterp.models.vocoder import check_log_mel


def _stream_outputs(generator: HiFiGANGenerator, mel: torch.Tensor) -> list[torch.Tensor]:
    """`HiFiGANGenerator.streams` of one (n_mels, T) mel, each (channels, samples so far) in float32."""
    return [stream[0].float() for stream in generator.streams(mel[None])]


def _streams(generator: HiFiGANGenerator, mels: list[torch.Tensor]) -> list[torch.Tensor]:
    """Mean absolute activation of each channel of each stream over ``mels`` (each (n_mels, T)): a list of
    len(ups) + 1 tensors, stream s of C / 2^s channels."""
    with torch.no_grad():
        means = [[stream.abs().mean(dim=1) for stream in _stream_outputs(generator, mel)] for mel in mels]
    return [torch.stack(per_mel).mean(dim=0) for per_mel in zip(*means)]


def _readers(generator: HiFiGANGenerator) -> list[torch.Tensor]:
    """For each stream, the L2 norm of the next layer's weights on each of its channels: ``ups.s`` reads stream s
    (weight (in, out, k)), ``conv_post`` the last (weight (1, in, k))."""
    norms = [upsample.weight.detach().float().pow(2).sum(dim=(1, 2)).sqrt() for upsample in generator.ups]
    norms.append(generator.conv_post.weight.detach().float().pow(2).sum(dim=(0, 2)).sqrt())
    return norms


def channel_importance(generator: HiFiGANGenerator, mels: list[torch.Tensor]) -> list[torch.Tensor]:
    """Per stream, each channel's mean absolute activation on ``mels`` times the norm of the weights that read it."""
    return [activation * reader for activation, reader in zip(_streams(generator, mels), _readers(generator))]


def prune_hifigan(generator: HiFiGANGenerator, upsample_initial_channel: int, mels: list[torch.Tensor], *,
                  refit: bool = True, resblock_kernel_sizes: tuple[int, ...] | None = None) -> HiFiGANGenerator:
    """A new generator like ``generator`` at ``upsample_initial_channel`` channels, keeping in every stream the
    most important channels (`channel_importance` on ``mels``, each (n_mels, T) log-mel) in their original order;
    float32. ``generator`` is not changed.

    ``resblock_kernel_sizes``, a subset of the generator's, keeps only those residual blocks of each stage's
    multi-receptive-field fusion (with their dilations): V1's k = 3 block alone costs a fifth of the three on a CPU.
    The student's fusion then averages fewer blocks than the teacher's; refitting makes up for it where it can,
    since every layer is fitted on the student's own input (the next upsampler on the student's stream).

    Raises:
        ValueError: the width is not narrower than the generator's (nor equal to it, with a subset of the blocks),
            not a width its upsamplers can halve, ``resblock_kernel_sizes`` not a subset of the generator's, or the
            calibration mels are missing or not finite (n_mels, T) log-mels of the generator's n_mels.
    """
    config = dict(generator.config)
    width = config["upsample_initial_channel"]
    stages = len(config["upsample_rates"])
    kernels = list(config["resblock_kernel_sizes"])
    kept_blocks = _kept_blocks(kernels, resblock_kernel_sizes)
    narrowest, widest = 2 ** stages, width if len(kept_blocks) < len(kernels) else width - 1
    if not narrowest <= upsample_initial_channel <= widest:
        bound = "at most" if widest == width else "narrower than"
        raise ValueError(f"upsample_initial_channel must be {bound} the generator's {width} and at least "
                         f"{2 ** stages} (halved by each of its {stages} upsamplers), got {upsample_initial_channel}")
    if upsample_initial_channel % 2 ** stages:
        raise ValueError(f"upsample_initial_channel must be a multiple of {2 ** stages} (halved exactly by each of "
                         f"its {stages} upsamplers), got {upsample_initial_channel}")
    if not mels:
        raise ValueError("prune_hifigan needs calibration mels (n_mels, T) to rank the channels by")
    for index, mel in enumerate(mels):
        if mel.dim() != 2:
            raise ValueError(f"calibration mel {index}: expected one log-mel ({config['n_mels']}, T), got shape "
                             f"{tuple(mel.shape)}")
        check_log_mel(mel, config["n_mels"])

    importance = channel_importance(generator, mels)
    keep = [torch.sort(torch.topk(score, upsample_initial_channel // 2 ** s).indices).values
            for s, score in enumerate(importance)]  # per stream: the channels kept, in order

    config = {key: value for key, value in config.items() if not key.startswith("_")}
    config["resblock_kernel_sizes"] = [kernels[j] for j in kept_blocks]
    config["resblock_dilation_sizes"] = [config["resblock_dilation_sizes"][j] for j in kept_blocks]
    student = HiFiGANGenerator(**{**config, "upsample_initial_channel": upsample_initial_channel})
    origin = _block_origins(generator.num_kernels, kept_blocks, stages)
    source = {name: tensor.detach().float() for name, tensor in generator.state_dict().items()}
    state = {"conv_pre.weight": source["conv_pre.weight"][keep[0]], "conv_pre.bias": source["conv_pre.bias"][keep[0]],
             "conv_post.weight": source["conv_post.weight"][:, keep[-1]],
             "conv_post.bias": source["conv_post.bias"]}
    for i in range(stages):
        state[f"ups.{i}.weight"] = source[f"ups.{i}.weight"][keep[i]][:, keep[i + 1]]  # (in, out, k)
        state[f"ups.{i}.bias"] = source[f"ups.{i}.bias"][keep[i + 1]]
    for name in student.state_dict():
        if name.startswith("resblocks."):
            index, rest = name.split(".", 2)[1:]
            stream = keep[int(index) // student.num_kernels + 1]
            tensor = source[f"resblocks.{origin[int(index)]}.{rest}"][stream]  # (out, in, k) or (out,)
            state[name] = tensor[:, stream] if name.endswith("weight") else tensor
    student.load_state_dict(state)
    if refit:
        _refit(student, generator, keep, mels, origin)
    return student.eval()


def _kept_blocks(kernels: list[int], chosen: tuple[int, ...] | None) -> list[int]:
    """The positions in a stage's fusion of the residual blocks ``chosen`` by kernel size (all when None)."""
    if chosen is None:
        return list(range(len(kernels)))
    chosen = list(chosen)
    if not chosen or len(set(chosen)) != len(chosen) or not set(chosen) <= set(kernels):
        raise ValueError(f"resblock_kernel_sizes must be distinct kernel sizes of the generator's residual blocks "
                         f"{kernels}, got {chosen}")
    return sorted(kernels.index(k) for k in chosen)


def _block_origins(teacher_kernels: int, kept_blocks: list[int], stages: int) -> list[int]:
    """For each of the student's residual blocks, the index of the teacher's block it is cut from."""
    return [i * teacher_kernels + j for i in range(stages) for j in kept_blocks]


def _patches(x: torch.Tensor, conv: torch.nn.Module) -> torch.Tensor:
    """(B, C, L) input of ``conv`` -> (B * L_out, C * k + 1): each output sample's receptive field, and a 1 for the
    bias. A ConvTranspose1d is read as the plain convolution it equals: over its input with stride - 1 zeros
    stuffed between the samples, with the kernel flipped (`_set_weight` turns it back)."""
    kernel = conv.kernel_size[0]
    if isinstance(conv, torch.nn.ConvTranspose1d):
        stride, padding = conv.stride[0], conv.padding[0]
        stuffed = x.new_zeros(x.shape[0], x.shape[1], (x.shape[2] - 1) * stride + 1)
        stuffed[..., ::stride] = x
        x, dilation, padding = stuffed, 1, kernel - 1 - padding
    else:
        dilation, padding = conv.dilation[0], conv.padding[0]
    x = F.pad(x, (padding, padding))
    windows = x.unfold(2, (kernel - 1) * dilation + 1, 1)[..., ::dilation]  # (B, C, L_out, k)
    windows = windows.permute(0, 2, 1, 3).reshape(-1, x.shape[1] * kernel)
    return torch.cat([windows, windows.new_ones(windows.shape[0], 1)], dim=1)


def _set_weight(conv: torch.nn.Module, solution: torch.Tensor) -> None:
    """(C_in * k + 1, C_out) least-squares solution over `_patches` -> the convolution's weight and bias."""
    kernel = conv.kernel_size[0]
    weight = solution[:-1].T.reshape(-1, solution.shape[0] // kernel, kernel)  # (C_out, C_in, k) as a plain conv
    if isinstance(conv, torch.nn.ConvTranspose1d):
        weight = weight.flip(-1).transpose(0, 1)  # (C_in, C_out, k)
    conv.weight.copy_(weight)
    conv.bias.copy_(solution[-1])


def _fit(conv: torch.nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Refit ``conv`` so that its output on ``x`` (B, C_in, L) is ``target`` (B, C_out, L_out) in least squares
    (ridge: 1e-3 of the mean eigenvalue); returns its new output."""
    features = _patches(x, conv)  # (N, C_in * k + 1)
    gram = features.T @ features
    ridge = 1e-3 * gram.diagonal().mean()
    rhs = features.T @ target.permute(0, 2, 1).reshape(-1, target.shape[1])  # (C_in * k + 1, C_out)
    _set_weight(conv, torch.linalg.solve(gram + ridge * torch.eye(len(gram)), rhs))
    return conv(x)


def _refit(student: HiFiGANGenerator, teacher: HiFiGANGenerator, keep: list[torch.Tensor],
           mels: list[torch.Tensor], origin: list[int]) -> None:
    """Layer by layer from the input, refit each of the student's convolutions (weights and bias, in closed form)
    so that, on the student's own input to it, it gives the teacher's output of the same convolution at the kept
    channels (ThiNet's and He et al.'s reconstruction; `channel_importance` chose the channels). Sliced but not
    refitted, the pruned channels' share of every stream is simply gone: V1 cut to 192 channels is then about 25
    times quieter than the teacher, its last stream at cosine 0.36 to the teacher's. ``origin[b]`` is the
    teacher's block that the student's block b is cut from."""
    frames = min(mel.shape[-1] for mel in mels)
    batch = torch.stack([mel[:, :frames] for mel in mels]).float()  # (B, n_mels, T)
    targets: dict[str, torch.Tensor] = {}

    def capture(name, channels):
        def hook(module, inputs, output):
            targets[name] = output.detach().float()[:, channels]
        return hook

    handles = [teacher.ups[i].register_forward_hook(capture(f"ups.{i}", keep[i + 1])) for i in range(len(keep) - 1)]
    for index in origin:  # the teacher's blocks the student keeps: the others' outputs would never be read
        channels = keep[index // teacher.num_kernels + 1]
        handles += [conv.register_forward_hook(capture(f"resblocks.{index}.{name}", channels))
                    for name, conv in teacher.resblocks[index].named_modules() if isinstance(conv, torch.nn.Conv1d)]
    handles.append(teacher.conv_post.register_forward_hook(capture("conv_post", slice(None))))
    try:
        with torch.no_grad():
            teacher.waveform(batch.to(teacher.conv_pre.weight.dtype))
    finally:
        for handle in handles:
            handle.remove()

    with torch.no_grad():  # the student's forward (HiFiGANGenerator.waveform), each convolution refitted first
        x = student.conv_pre(batch)  # (B, C, T): sliced from the teacher's, exact
        for i, upsample in enumerate(student.ups):
            x = _fit(upsample, F.leaky_relu(x, LRELU_SLOPE), targets[f"ups.{i}"])
            outputs = []
            for index in range(i * student.num_kernels, (i + 1) * student.num_kernels):
                block, y, name = student.resblocks[index], x, f"resblocks.{origin[index]}"
                if isinstance(block, ResBlock1):
                    for j, (dilated, plain) in enumerate(zip(block.convs1, block.convs2)):
                        inner = _fit(dilated, F.leaky_relu(y, LRELU_SLOPE), targets[f"{name}.convs1.{j}"])
                        y = y + _fit(plain, F.leaky_relu(inner, LRELU_SLOPE), targets[f"{name}.convs2.{j}"])
                else:
                    for j, dilated in enumerate(block.convs):
                        y = y + _fit(dilated, F.leaky_relu(y, LRELU_SLOPE), targets[f"{name}.convs.{j}"])
                outputs.append(y)
            x = sum(outputs) / student.num_kernels
        _fit(student.conv_post, F.leaky_relu(x), targets["conv_post"])
