"""A narrow HiFi-GAN cut out of a wide one (melinterp.training.pruning, examples/training/prune_hifigan.py):
channels chosen, convolutions refitted, bad input named."""

from pathlib import Path

import pytest
import torch
from conftest import example_script

from melinterp.models.hifigan import HiFiGANGenerator
from melinterp.training.pruning import _fit, channel_importance, prune_hifigan
from melinterp.training.vocoder_mels import save_model_mels

REPO = Path(__file__).resolve().parents[1]

N_MELS = 8


def _generator(width: int, seed: int) -> HiFiGANGenerator:
    torch.manual_seed(seed)
    generator = HiFiGANGenerator.from_preset("v1", upsample_initial_channel=width, n_mels=N_MELS)
    with torch.no_grad():
        for parameter in generator.parameters():
            parameter.normal_(0.0, 0.2)  # loud enough that every stream carries signal to the output
    return generator.eval()


def _embedded(small: HiFiGANGenerator, width: int, seed: int) -> tuple[HiFiGANGenerator, list[torch.Tensor]]:
    """A generator of ``width`` channels that computes exactly what ``small`` does: small's channels sit at random
    positions of every stream, and the others are dead (nothing writes to them or reads them)."""
    generator = torch.Generator().manual_seed(seed)
    stages = len(small.ups)
    narrow = small.config.upsample_initial_channel
    positions = [torch.sort(torch.randperm(width // 2 ** s, generator=generator)[: narrow // 2 ** s]).values
                 for s in range(stages + 1)]
    wide = HiFiGANGenerator.from_preset("v1", upsample_initial_channel=width, n_mels=N_MELS).eval()
    state = {name: torch.zeros_like(tensor) for name, tensor in wide.state_dict().items()}
    source = small.state_dict()
    state["conv_pre.weight"][positions[0]] = source["conv_pre.weight"]
    state["conv_pre.bias"][positions[0]] = source["conv_pre.bias"]
    for i in range(stages):
        state[f"ups.{i}.weight"][positions[i][:, None], positions[i + 1]] = source[f"ups.{i}.weight"]
        state[f"ups.{i}.bias"][positions[i + 1]] = source[f"ups.{i}.bias"]
    for name, tensor in source.items():
        if name.startswith("resblocks."):
            stream = positions[int(name.split(".")[1]) // small.num_kernels + 1]
            if name.endswith("weight"):
                state[name][stream[:, None], stream] = tensor
            else:
                state[name][stream] = tensor
    state["conv_post.weight"][:, positions[-1]] = source["conv_post.weight"]
    state["conv_post.bias"] = source["conv_post.bias"].clone()
    wide.load_state_dict(state)
    return wide, positions


@pytest.fixture(scope="module")
def embedded():
    small = _generator(16, seed=0)
    wide, positions = _embedded(small, 32, seed=1)
    torch.manual_seed(2)
    mels = [torch.randn(N_MELS, 12) for _ in range(3)]
    return small, wide, positions, mels


def test_the_embedded_generator_is_the_small_one(embedded):
    small, wide, _, mels = embedded
    with torch.no_grad():
        assert torch.allclose(wide(mels[0]), small(mels[0]), atol=1e-6)


def test_dead_channels_are_the_least_important(embedded):
    _, wide, positions, mels = embedded
    for score, live in zip(channel_importance(wide, mels), positions):
        dead = torch.ones(len(score), dtype=torch.bool)
        dead[live] = False
        assert score[dead].max() == 0 and score[live].min() > 0


def test_pruning_keeps_the_live_channels_exactly(embedded):
    small, wide, _, mels = embedded
    student = prune_hifigan(wide, 16, mels, refit=False)
    assert student.config.upsample_initial_channel == 16

    def rest(config):
        return {k: v for k, v in config.items() if k != "upsample_initial_channel" and not k.startswith("_")}
    assert rest(student.config) == rest(wide.config)
    for name, tensor in small.state_dict().items():
        assert torch.equal(student.state_dict()[name], tensor), name


def test_refitting_reproduces_the_teacher_on_its_calibration_mels(embedded):
    _, wide, _, mels = embedded
    student = prune_hifigan(wide, 16, mels)
    with torch.no_grad():
        for mel in mels:
            target = wide(mel)
            assert (student(mel) - target).abs().max() < 0.05 * target.abs().max()


def _doubled(small: HiFiGANGenerator, share: float) -> HiFiGANGenerator:
    """A generator of twice ``small``'s channels that computes what it does: every channel of every stream is there
    twice (channels 2c and 2c + 1, equal), and whatever reads the pair reads the first with ``share`` of small's
    weight and the second with the rest. Keeping the first copies alone loses the rest of every reader's input."""
    wide = HiFiGANGenerator.from_preset("v1", upsample_initial_channel=2 * small.config.upsample_initial_channel,
                                        n_mels=N_MELS).eval()
    split = torch.tensor([share, 1.0 - share])

    def rows(tensor):  # each output channel twice
        return tensor.repeat_interleave(2, dim=0)

    def columns(tensor):  # each input channel twice, its weight split
        return (tensor.unsqueeze(2) * split.view(1, 1, 2, *([1] * (tensor.dim() - 2)))).flatten(1, 2)

    state = {}
    for name, tensor in small.state_dict().items():
        if name.startswith("ups.") and name.endswith("weight"):  # (in, out, k): columns of the transpose
            state[name] = columns(rows(tensor.transpose(0, 1))).transpose(0, 1)
        elif name.startswith("conv_pre."):
            state[name] = rows(tensor)
        elif name == "conv_post.weight":
            state[name] = columns(tensor)
        elif name == "conv_post.bias":
            state[name] = tensor.clone()
        elif name.endswith("weight"):  # a residual convolution: (out, in, k)
            state[name] = columns(rows(tensor))
        else:
            state[name] = rows(tensor)
    wide.load_state_dict(state)
    return wide


def test_refitting_gives_back_what_the_pruned_channels_carried():
    small = _generator(16, seed=3)
    teacher = _doubled(small, share=0.8)
    torch.manual_seed(4)
    mels = [torch.randn(N_MELS, 12) for _ in range(3)]
    with torch.no_grad():
        assert torch.allclose(teacher(mels[0]), small(mels[0]), atol=1e-5)
        target = torch.stack([teacher(mel) for mel in mels])
        sliced = prune_hifigan(teacher, 16, mels, refit=False)
        refitted = prune_hifigan(teacher, 16, mels)
        sliced_error = (torch.stack([sliced(mel) for mel in mels]) - target).pow(2).mean()
        refitted_error = (torch.stack([refitted(mel) for mel in mels]) - target).pow(2).mean()
    assert sliced_error > 0.01 * target.pow(2).mean()  # the first copies alone are a different generator
    assert refitted_error < 0.01 * sliced_error


@pytest.mark.parametrize("conv", [torch.nn.Conv1d(6, 5, 7, dilation=3, padding=9),
                                  torch.nn.ConvTranspose1d(6, 5, 16, 8, padding=4)], ids=["conv", "transposed"])
def test_a_refitted_convolution_recovers_the_weights_that_made_its_target(conv):
    torch.manual_seed(5)
    x = torch.randn(3, 6, 50)
    with torch.no_grad():
        target = conv(x)
        weight, bias = conv.weight.clone(), conv.bias.clone()
        conv.weight.zero_()
        conv.bias.zero_()
        output = _fit(conv, x, target)
    assert torch.allclose(conv.weight, weight, atol=1e-2) and torch.allclose(conv.bias, bias, atol=1e-2)
    assert torch.allclose(output, target, atol=1e-2)


def _one_block_thrice(seed: int) -> HiFiGANGenerator:
    """A V1 layout whose k = 7 and k = 11 blocks compute what its k = 3 block does (the k = 3 kernels at the
    centre of the longer ones, zeros around them), so each stage's fusion, the mean of the three, is the k = 3
    block's output: a generator with the k = 3 blocks alone is the same function."""
    generator = _generator(16, seed)
    with torch.no_grad():
        for i in range(len(generator.ups)):
            short = generator.resblocks[3 * i]
            for long in generator.resblocks[3 * i + 1: 3 * i + 3]:
                for convs in ("convs1", "convs2"):
                    for source, target in zip(getattr(short, convs), getattr(long, convs)):
                        middle = target.kernel_size[0] // 2
                        target.weight.zero_()
                        target.weight[..., middle - 1: middle + 2] = source.weight
                        target.bias.copy_(source.bias)
    return generator


def test_a_subset_of_the_blocks_is_cut_exactly_when_the_rest_repeat_it():
    teacher = _one_block_thrice(seed=7)
    torch.manual_seed(8)
    mels = [torch.randn(N_MELS, 12) for _ in range(3)]
    student = prune_hifigan(teacher, 16, mels, refit=False, resblock_kernel_sizes=(3,))
    assert list(student.config.resblock_kernel_sizes) == [3]
    assert [list(d) for d in student.config.resblock_dilation_sizes] == [[1, 3, 5]]
    assert len(student.resblocks) == len(teacher.ups)
    with torch.no_grad():
        for mel in mels:
            assert torch.allclose(student(mel), teacher(mel), atol=1e-5)


def test_refitting_makes_up_for_the_blocks_left_out():
    teacher = _generator(16, seed=9)
    torch.manual_seed(10)
    mels = [torch.randn(N_MELS, 12) for _ in range(3)]
    with torch.no_grad():
        target = torch.stack([teacher(mel) for mel in mels])
        sliced, refitted = [(torch.stack([prune_hifigan(teacher, 16, mels, refit=refit, resblock_kernel_sizes=(3,))(mel)
                                          for mel in mels]) - target).pow(2).mean() for refit in (False, True)]
    assert sliced > 0.05 * target.pow(2).mean()  # the k = 3 blocks alone are another generator
    assert refitted < 0.5 * sliced


def test_the_whole_width_is_kept_when_only_blocks_are_cut(embedded):
    _, wide, _, mels = embedded
    student = prune_hifigan(wide, 32, mels, resblock_kernel_sizes=(7,))
    assert student.config.upsample_initial_channel == 32 and list(student.config.resblock_kernel_sizes) == [7]


@pytest.mark.parametrize("kernels", [(5,), (), (3, 3)], ids=["unknown", "none", "twice"])
def test_blocks_it_does_not_have_are_refused(embedded, kernels):
    with pytest.raises(ValueError, match=r"resblock_kernel_sizes must be distinct kernel sizes of the "
                                         r"generator's residual blocks \[3, 7, 11\]"):
        prune_hifigan(embedded[1], 16, embedded[3], resblock_kernel_sizes=kernels)


@pytest.mark.parametrize("width, message", [(32, "narrower"), (8, "at least 16"), (24, "multiple of 16")])
def test_a_width_it_cannot_cut_is_refused(embedded, width, message):
    _, wide, _, mels = embedded
    with pytest.raises(ValueError, match=message):
        prune_hifigan(wide, width, mels)


def test_no_calibration_mels_is_refused(embedded):
    with pytest.raises(ValueError, match="calibration mels"):
        prune_hifigan(embedded[1], 16, [])


@pytest.mark.parametrize("mel, message", [(torch.randn(1, N_MELS, 12), r"calibration mel 0: expected one log-mel"),
                                          (torch.randn(80, 12), r"expected a log-mel of shape \(B, 8, T\)"),
                                          (torch.full((N_MELS, 12), float("nan")), "finite")])
def test_calibration_mels_that_do_not_fit_are_named(embedded, mel, message):
    with pytest.raises(ValueError, match=message):
        prune_hifigan(embedded[1], 16, [mel])


@pytest.fixture(scope="module")
def prune_script():
    return example_script("training/prune_hifigan.py", "prune_hifigan")


@pytest.fixture(scope="module")
def teacher_and_mels(tmp_path_factory):
    folder = tmp_path_factory.mktemp("prune")
    torch.manual_seed(6)
    HiFiGANGenerator.from_preset("v1", upsample_initial_channel=32).save_pretrained(folder / "teacher")
    mels = {f"wavs/s/t{i}": torch.randn(80, 20).to(torch.float16) - 5 for i in range(8)}
    return folder / "teacher", save_model_mels(mels, folder / "mels.safetensors")


def test_the_script_writes_a_narrower_generator(prune_script, teacher_and_mels, tmp_path, capsys):
    teacher, mels = teacher_and_mels
    out = tmp_path / "student"
    assert prune_script.main([str(teacher), "--mels", str(mels), "--channels", "16", "--out", str(out),
                              "--count", "4", "--frames", "12"]) == 0
    assert HiFiGANGenerator.from_pretrained(out).config.upsample_initial_channel == 16
    assert "mel L1 to the input on 4 other mels: teacher" in capsys.readouterr().out


def test_the_script_cuts_the_blocks_it_is_asked_to_keep(prune_script, teacher_and_mels, tmp_path, capsys):
    teacher, mels = teacher_and_mels
    out = tmp_path / "student"
    assert prune_script.main([str(teacher), "--mels", str(mels), "--channels", "32", "--kernels", "3",
                              "--out", str(out), "--count", "4", "--frames", "12"]) == 0
    student = HiFiGANGenerator.from_pretrained(out)
    assert student.config.upsample_initial_channel == 32 and list(student.config.resblock_kernel_sizes) == [3]
    assert "residual kernels [3]" in capsys.readouterr().out


@pytest.mark.parametrize("change, message", [
    ({"teacher": "src/melinterp/default_model/vocoder"}, "holds a VocosVocoder: only a HiFi-GAN generator can be cut"),
    ({"--channels": "24"}, "multiple of 16"),
    ({"--kernels": "5"}, "distinct kernel sizes of the generator's residual blocks [3, 7, 11]"),
    ({"--count": "5"}, "holds 8 mels: --count 5 needs twice as many"),
    ({"--out": "a_file"}, "is a file, expected a folder"),
])
def test_the_script_names_what_it_cannot_use_and_writes_nothing(prune_script, teacher_and_mels, tmp_path, capsys,
                                                                change, message):
    teacher, mels = teacher_and_mels
    (tmp_path / "a_file").write_text("not a folder")
    arguments = {"teacher": str(teacher), "--mels": str(mels), "--channels": "16", "--out": "student",
                 "--count": "4"}
    arguments.update(change)
    if arguments["teacher"].startswith("src/"):
        arguments["teacher"] = str(REPO / arguments["teacher"])
    arguments["--out"] = str(tmp_path / arguments["--out"])
    argv = [arguments.pop("teacher")] + [part for pair in arguments.items() for part in pair]
    assert prune_script.main(argv) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "student").exists()


@pytest.mark.parametrize("option", ["--count", "--frames"])
def test_the_script_wants_positive_counts(prune_script, teacher_and_mels, tmp_path, option):
    teacher, mels = teacher_and_mels
    with pytest.raises(SystemExit):
        prune_script.main([str(teacher), "--mels", str(mels), "--channels", "16", "--out", str(tmp_path / "s"),
                           option, "0"])
