"""Cut a narrow HiFi-GAN out of a converted official one, to start a distillation from (`melinterp.training.pruning`).

    melinterp convert-hifigan generator_universal.pth.tar hifigan_universal
    python examples/training/prune_hifigan.py hifigan_universal --mels corpus-voc/own_mels.safetensors \
        --channels 192 --out runs/v1-pruned-192
    python examples/training/prune_hifigan.py hifigan_universal --mels corpus-voc/own_mels.safetensors \
        --channels 320 --kernels 3 --out runs/v1-pruned-320-k3   # the fast student: the k = 3 blocks alone
    melinterp train-vocoder --config examples/configs/vocoder_distil_pruned.json --init-from runs/v1-pruned-192 ...

The channels are ranked and the convolutions refitted on ``--count`` calibration mels (the first ``--frames`` frames
of every n-th mel of the file, spread over its speakers). It prints the mel L1 of the teacher and of the pruned
generator to their input mels on ``--count`` other mels, the figure distillation starts from.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def mel_l1(generator, mels) -> float:
    """Mean absolute difference between each mel and the log-mel of the generator's waveform of it."""
    import torch

    from melinterp.audio import mel_spectrogram

    errors = []
    with torch.no_grad():
        for mel in mels:
            vocoded = mel_spectrogram(generator(mel))
            frames = min(vocoded.shape[-1], mel.shape[-1])
            errors.append((vocoded[:, :frames] - mel[:, :frames]).abs().mean().item())
    return sum(errors) / len(errors)


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text}")
    return value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("teacher", type=Path, help="a HiFi-GAN vocoder folder (melinterp convert-hifigan)")
    parser.add_argument("--mels", type=Path, required=True, help="a `melinterp vocoder-mels` .safetensors file")
    parser.add_argument("--channels", type=int, required=True, help="the student's upsample_initial_channel")
    parser.add_argument("--out", type=Path, required=True, help="the student's vocoder folder")
    parser.add_argument("--kernels", type=positive, nargs="+", default=None,
                        help="keep only the residual blocks of these kernel sizes in each stage (default: all; "
                             "V1's 3 alone is the fast student)")
    parser.add_argument("--count", type=positive, default=30, help="calibration mels (and as many to score on)")
    parser.add_argument("--frames", type=positive, default=100, help="frames of each calibration mel")
    args = parser.parse_args(argv)

    from melinterp.models.vocoder import load_vocoder_folder, vocoder_folder_class
    from melinterp.training.pruning import prune_hifigan
    from melinterp.training.vocoder_trainer import read_model_mels
    from melinterp.utils import atomic_directory, check_writable_folder

    try:
        check_writable_folder("--out", args.out)
        kind = vocoder_folder_class(args.teacher)
        if kind != "HiFiGANGenerator":
            raise ValueError(f"{args.teacher} holds a {kind}: only a HiFi-GAN generator can be cut "
                             f"(melinterp convert-hifigan makes one of an official checkpoint)")
        teacher = load_vocoder_folder(args.teacher).eval()
        mels = [mel.float() for mel in read_model_mels(args.mels).values()]
        if len(mels) < 2 * args.count:
            raise ValueError(f"{args.mels} holds {len(mels)} mels: --count {args.count} needs twice as many")
        stride = len(mels) // (2 * args.count)
        calibration = [mel[:, :args.frames] for mel in mels[::2 * stride][:args.count]]
        scoring = mels[stride::2 * stride][:args.count]
        student = prune_hifigan(teacher, args.channels, calibration, resblock_kernel_sizes=args.kernels)
        with atomic_directory(args.out) as folder:  # a failure leaves no half-written folder
            student.save_pretrained(folder)
    except (OSError, ValueError) as error:
        print(f"prune_hifigan.py: error: {error}", file=sys.stderr)
        return 1
    size = sum(p.numel() for p in student.parameters())
    print(f"wrote {args.out} ({size / 1e6:.2f} M parameters, upsample_initial_channel {args.channels}, "
          f"residual kernels {list(student.config.resblock_kernel_sizes)})")
    print(f"mel L1 to the input on {len(scoring)} other mels: teacher {mel_l1(teacher, scoring):.3f}, "
          f"pruned {mel_l1(student, scoring):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
