"""Tests for course_utils.precision: exact memory counts, untouched caller models, bad input."""

from __future__ import annotations

import contextlib
import copy

import pytest
import torch
from torch import nn

from course_utils import precision
from course_utils.precision import (
    Arm,
    MemoryEstimate,
    StepResult,
    arm_label,
    compare_training_steps,
    cuda_peak_bytes,
    cuda_step_bytes,
    training_memory,
)


def measure_training_step(model, x, y, *, amp=None, channels_last=False, compile=False,
                          warmup=3, repeats=10):
    """One arm, one round: what notebook 11's first from-scratch timing does."""
    arm = Arm(amp=amp, channels_last=channels_last, compile=compile)
    return compare_training_steps(model, x, y, [arm], rounds=1, warmup=warmup, repeats=repeats)[0]


def sum_loss(out, y):
    return out.sum()  # saves nothing for backward: only the layer's own tensors are counted


@pytest.fixture
def tiny_cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 4 * 4, 2))


# --- training_memory ----------------------------------------------------------------------------


def test_training_memory_counts_the_saved_input_but_not_the_weight():
    model = nn.Linear(4, 3, bias=False)
    x, y = torch.randn(8, 4), torch.zeros(8)
    estimate = training_memory(model, x, y, loss_fn=sum_loss)
    assert estimate.parameter_bytes == estimate.gradient_bytes == 3 * 4 * 4
    assert estimate.saved_bytes == 8 * 4 * 4  # mm saves x (fp32) and the weight (a parameter)
    assert estimate.total_bytes == 48 + 48 + 128


def test_training_memory_counts_only_the_slice_of_a_larger_tensor():
    model = nn.Linear(4, 3, bias=False)
    dataset = torch.randn(1000, 4)
    estimate = training_memory(model, dataset[:8], torch.zeros(8), loss_fn=sum_loss)
    assert estimate.saved_bytes == 8 * 4 * 4  # not the 1000 rows behind the view


def test_training_memory_under_bf16_counts_the_low_precision_copies():
    model = nn.Linear(4, 3, bias=False)
    x, y = torch.randn(8, 4), torch.zeros(8)
    estimate = training_memory(model, x, y, loss_fn=sum_loss, amp="bf16")
    assert estimate.saved_bytes == 8 * 4 * 2  # the bf16 copy of x (for the weight's gradient)
    x.requires_grad_(True)  # now the input's gradient needs the weight: its bf16 copy is saved too
    estimate = training_memory(model, x, y, loss_fn=sum_loss, amp="bf16")
    assert estimate.saved_bytes == 8 * 4 * 2 + 3 * 4 * 2
    assert estimate.parameter_bytes == 48  # the weights themselves stay fp32


def test_training_memory_halves_activations_of_a_wide_mlp():
    model = nn.Sequential(nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, 10))
    x, y = torch.randn(256, 64), torch.randint(0, 10, (256,))
    fp32 = training_memory(model, x, y).saved_bytes
    bf16 = training_memory(model, x, y, amp="bf16").saved_bytes
    assert 0.4 < bf16 / fp32 < 0.7


def test_training_memory_leaves_the_model_untouched(tiny_cnn):
    before = copy.deepcopy(tiny_cnn.state_dict())
    x, y = torch.randn(16, 1, 4, 4), torch.randint(0, 2, (16,))
    training_memory(tiny_cnn, x, y)
    for name, value in tiny_cnn.state_dict().items():
        assert torch.equal(value, before[name]), name  # BatchNorm statistics included
    assert all(p.grad is None for p in tiny_cnn.parameters())


def test_memory_estimate_str_names_the_parts():
    text = str(MemoryEstimate(2**20, 2**20, 2 * 2**20))
    assert text.startswith("4.00 MiB") and "saved for backward 2.00" in text


@pytest.mark.parametrize("model, x, y, error", [
    ("not a model", torch.randn(2, 4), torch.zeros(2), TypeError),
    (nn.Linear(4, 2), [[1.0] * 4], torch.zeros(1), TypeError),
    (nn.Linear(4, 2), torch.randn(3, 4), torch.zeros(2), ValueError),
    (nn.Linear(4, 2), torch.randn(0, 4), torch.zeros(0), ValueError),
])
def test_training_memory_bad_input(model, x, y, error):
    with pytest.raises(error):
        training_memory(model, x, y)


def test_training_memory_unknown_amp_names_the_choices():
    with pytest.raises(ValueError, match="'bf16'"):
        training_memory(nn.Linear(4, 2), torch.randn(2, 4), torch.zeros(2, dtype=torch.long), amp="fp8")


# --- cuda_peak_bytes, arm_label -------------------------------------------------------------------


@pytest.mark.parametrize("fn", [cuda_peak_bytes, cuda_step_bytes])
def test_cuda_memory_refuses_the_cpu(fn):
    with pytest.raises(ValueError, match="training_memory"):
        fn(lambda: None, "cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_step_bytes_leaves_out_what_was_allocated_before():
    held = torch.empty(2**22, device="cuda")  # 16 MiB already allocated
    extra = cuda_step_bytes(lambda: torch.empty(2**20, device="cuda"), "cuda")
    assert 4 * 2**20 <= extra < 8 * 2**20
    del held


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_peak_bytes_sees_an_allocation():
    peak = cuda_peak_bytes(lambda: torch.empty(2**20, device="cuda"), "cuda")
    assert peak >= 4 * 2**20


@pytest.mark.parametrize("args, label", [
    ((None,), "fp32"),
    (("bf16", True), "bf16 autocast + channels_last"),
    (("fp16", False, True), "fp16 autocast + torch.compile"),
])
def test_arm_label(args, label):
    assert arm_label(*args) == label


def test_arm_label_unknown_amp():
    with pytest.raises(ValueError, match="choose one of"):
        arm_label("float16")


# --- measure_training_step ------------------------------------------------------------------------


@pytest.mark.parametrize("amp", [None, "bf16", "fp16"])
def test_measure_training_step_reports_and_leaves_the_model_untouched(tiny_cnn, amp):
    before = copy.deepcopy(tiny_cnn.state_dict())
    x, y = torch.randn(16, 1, 4, 4), torch.randint(0, 2, (16,))
    result = measure_training_step(tiny_cnn, x, y, amp=amp, warmup=0, repeats=2)
    assert isinstance(result, StepResult)
    assert result.label == arm_label(amp) and result.amp == amp and result.batch_size == 16
    assert result.images_per_s > 0 and result.images_per_s_low <= result.images_per_s_high
    assert result.first_step_s > 0 and result.memory is not None and result.cuda_peak_bytes is None
    assert result.as_dict()["memory"]["saved_bytes"] == result.memory.saved_bytes
    for name, value in tiny_cnn.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_measure_training_step_channels_last(tiny_cnn):
    x, y = torch.randn(16, 1, 4, 4), torch.randint(0, 2, (16,))
    result = measure_training_step(tiny_cnn, x, y, channels_last=True, warmup=0, repeats=1)
    assert result.channels_last and result.label == "fp32 + channels_last"
    assert x.is_contiguous()  # the caller's batch is not converted


def test_measure_training_step_compile_wraps_the_copy(tiny_cnn, monkeypatch):
    wrapped = []

    def fake_compile(model):
        wrapped.append(model)
        return model

    monkeypatch.setattr(precision.torch, "compile", fake_compile)
    x, y = torch.randn(16, 1, 4, 4), torch.randint(0, 2, (16,))
    result = measure_training_step(tiny_cnn, x, y, compile=True, warmup=0, repeats=1)
    assert len(wrapped) == 1 and wrapped[0] is not tiny_cnn
    assert result.compiled and result.memory is None and result.label == "fp32 + torch.compile"


@pytest.mark.parametrize("kwargs, error, match", [
    ({"amp": "fp8"}, ValueError, "choose one of"),
    ({"channels_last": True}, ValueError, "4-D"),
    ({"warmup": -1}, ValueError, "warmup"),
    ({"repeats": 0}, ValueError, "repeats"),
])
def test_measure_training_step_bad_input(kwargs, error, match):
    model = nn.Linear(4, 2)
    x, y = torch.randn(8, 4), torch.randint(0, 2, (8,))
    with pytest.raises(error, match=match):
        measure_training_step(model, x, y, **kwargs)


def test_measure_training_step_rejects_a_non_model():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        measure_training_step(lambda x: x, torch.randn(2, 4), torch.zeros(2))


# --- compare_training_steps -----------------------------------------------------------------------


def test_compare_training_steps_interleaves_the_arms(tiny_cnn, monkeypatch):
    calls = []
    real_train_step = precision.train_step

    def recording_train_step(model, x, y, **kwargs):
        calls.append((id(model), kwargs["amp"]))
        return real_train_step(model, x, y, **kwargs)

    monkeypatch.setattr(precision, "train_step", recording_train_step)
    x, y = torch.randn(16, 1, 4, 4), torch.randint(0, 2, (16,))
    arms = [Arm(), Arm("bf16"), Arm(channels_last=True)]
    results = compare_training_steps(tiny_cnn, x, y, arms, rounds=2, warmup=1, repeats=3)
    assert [r.label for r in results] == ["fp32", "bf16 autocast", "fp32 + channels_last"]
    assert all(r.repeats == 6 and r.warmup == 1 for r in results)
    models = list(dict.fromkeys(model for model, _ in calls))  # one copy per arm, in order
    assert len(models) == 3 and id(tiny_cnn) not in models
    timed = [models.index(model) for model, _ in calls[6:]]  # after 3 first steps + 3 warm-ups
    assert timed == [0] * 3 + [1] * 3 + [2] * 3 + [2] * 3 + [1] * 3 + [0] * 3  # odd rounds reversed
    assert [amp for _, amp in calls[:3]] == [None, "bf16", None]


def test_arm_label_property():
    assert Arm("fp16", channels_last=True, compile=True).label == (
        "fp16 autocast + channels_last + torch.compile")


@pytest.mark.parametrize("arms, kwargs, error, match", [
    ([], {}, ValueError, "empty"),
    ([None], {}, TypeError, "Arm"),
    ([Arm("fp8")], {}, ValueError, "choose one of"),
    ([Arm(channels_last=True)], {}, ValueError, "4-D"),
    ([Arm()], {"rounds": 0}, ValueError, "rounds"),
    ([Arm()], {"repeats": 0}, ValueError, "repeats"),
    ([Arm()], {"warmup": -1}, ValueError, "warmup"),
    ([Arm()], {"rounds": 1.5}, ValueError, "rounds"),
])
def test_compare_training_steps_bad_input(arms, kwargs, error, match):
    x, y = torch.randn(8, 4), torch.randint(0, 2, (8,))
    with pytest.raises(error, match=match):
        compare_training_steps(nn.Linear(4, 2), x, y, arms, **kwargs)


def test_an_arm_context_is_entered_around_each_of_its_steps(tiny_cnn):
    entered = []

    @contextlib.contextmanager
    def flag():
        entered.append(1)
        yield

    x, y = torch.randn(16, 1, 4, 4), torch.randint(0, 2, (16,))
    arms = [Arm(), Arm(context=flag, name="with flag")]
    results = compare_training_steps(tiny_cnn, x, y, arms, rounds=3, warmup=2, repeats=2)
    assert [r.label for r in results] == ["fp32", "with flag"]
    # memory estimate + first step + 2 warm-ups + 3 rounds x 2 timed steps, on the flagged arm only
    assert len(entered) == 1 + 1 + 2 + 6


def test_round_medians_pair_the_arms(tiny_cnn):
    x, y = torch.randn(16, 1, 4, 4), torch.randint(0, 2, (16,))
    fp32, bf16 = compare_training_steps(tiny_cnn, x, y, [Arm(), Arm("bf16")], rounds=4, warmup=0,
                                        repeats=3)
    assert fp32.rounds == 4 and len(fp32.times_s) == 12 and len(fp32.round_median_s) == 4
    assert fp32.round_median_s[1] == sorted(fp32.times_s[3:6])[1]
    assert len(bf16.round_median_s) == 4 and fp32.cuda_step_bytes is None


def test_round_medians_of_a_result_made_by_hand():
    result = StepResult("fp32", None, False, False, 8, 1.0, 1.0, 1.0, 0.1, 0, 4, None, None,
                        times_s=(1.0, 3.0, 2.0, 8.0), rounds=2)
    assert result.round_median_s == (2.0, 5.0)


def test_two_arms_with_the_same_label_are_refused():
    x, y = torch.randn(8, 4), torch.randint(0, 2, (8,))
    with pytest.raises(ValueError, match="name"):
        compare_training_steps(nn.Linear(4, 2), x, y, [Arm(), Arm(context=contextlib.nullcontext)])
