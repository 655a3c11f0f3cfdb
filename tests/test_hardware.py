"""Device choice, seeding, AMP dtypes and the environment report (course_utils.hardware)."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
import torch

import course_utils.datasets as ds
from course_utils import hardware
from course_utils.hardware import amp_dtype, describe_environment, get_device, seed_everything

HAS_CUDA = torch.cuda.is_available()
HAS_MPS = hasattr(torch.backends, "mps") and torch.backends.mps.is_available()


@pytest.mark.skipif(HAS_CUDA or HAS_MPS, reason="this machine has an accelerator")
def test_get_device_is_cpu_without_accelerator():
    assert get_device() == torch.device("cpu")


def test_get_device_prefers_cuda_when_present(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert get_device() == torch.device("cuda")
    assert get_device(prefer="cpu") == torch.device("cpu")


def test_prefer_cpu_always_works():
    assert get_device(prefer="cpu") == torch.device("cpu")


@pytest.mark.skipif(HAS_CUDA, reason="CUDA is available here")
def test_prefer_unavailable_cuda_raises():
    with pytest.raises(ValueError, match="'cuda' is not available on this machine") as info:
        get_device(prefer="cuda")
    assert "'cpu'" in str(info.value)  # says what is available instead


@pytest.mark.parametrize("prefer", ["tpu", "CUDA", "gpu"])
def test_prefer_unknown_device_lists_choices(prefer):
    with pytest.raises(ValueError, match="not a device type") as info:
        get_device(prefer=prefer)
    for name in ("cuda", "mps", "cpu"):
        assert repr(name) in str(info.value)


def draw():
    return random.random(), np.random.rand(), torch.rand(3)  # noqa: NPY002 (the global RNG)


def test_seed_everything_makes_all_three_rngs_reproducible():
    seed_everything(123)
    first = draw()
    seed_everything(123)
    second = draw()
    seed_everything(124)
    third = draw()
    assert first[0] == second[0] and first[1] == second[1]
    assert torch.equal(first[2], second[2])
    assert first[0] != third[0] and first[1] != third[1]
    assert not torch.equal(first[2], third[2])


def test_seed_everything_accepts_seeds_beyond_numpy_range():
    seed_everything(2**40)
    first = draw()
    seed_everything(2**40)
    assert draw()[1] == first[1]


@pytest.mark.parametrize("seed", [-1, 1.5, 2.0, "3", None, True, 2**64, 2**70])
def test_seed_everything_rejects_bad_seeds(seed):
    with pytest.raises(ValueError, match=r"seed must be an int in \[0, 2\*\*64\)"):
        seed_everything(seed)


def test_amp_dtype_maps_the_switch():
    assert amp_dtype(None) is None
    assert amp_dtype("bf16") is torch.bfloat16
    assert amp_dtype("fp16") is torch.float16


@pytest.mark.parametrize("amp", ["fp8", "float16", "BF16", torch.float16])
def test_amp_dtype_rejects_other_values(amp):
    with pytest.raises(ValueError, match="is not supported") as info:
        amp_dtype(amp)
    assert "None, 'bf16', 'fp16'" in str(info.value)


def test_describe_environment_reports_and_writes_nothing(isolated_cache, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    report = describe_environment()
    text = str(report)
    assert sorted(tmp_path.rglob("*")) == before  # no cache folder, no download, no files
    assert not isolated_cache.exists()

    lines = dict(line.split(None, 1) for line in text.splitlines() if not line.startswith("torch threads"))
    assert lines["torch"].strip() == hardware._version("torch")
    assert torch.__version__.startswith(lines["torch"].strip())
    assert lines["device"].strip() == str(get_device())
    assert lines["python"].strip() == report.python
    assert text.splitlines()[-1].startswith("data")
    assert report.data.startswith("fashion_mnist: ")
    assert report.data in text
    assert report.cpu_count >= 1 and report.torch_threads == torch.get_num_threads()
    if not (HAS_CUDA or HAS_MPS):
        assert report.accelerator == "none (CPU only)"


def test_describe_environment_data_line_follows_the_dataset(monkeypatch):
    monkeypatch.setitem(ds.SPECS, "mnist", dataclasses.replace(ds.SPECS["mnist"], system_dirs=()))
    report = describe_environment("mnist")
    expected = f"mnist: not on disk: torchvision would download it to {ds.data_cache_dir()} (needs internet)"
    assert report.data == expected
    assert describe_environment("digits").data.startswith("digits: built in")


def test_seed_everything_accepts_the_largest_torch_seed():
    seed_everything(2**64 - 1)  # the top of torch's range: 2**64 overflowed before it was refused
    first = draw()
    seed_everything(2**64 - 1)
    assert torch.equal(draw()[2], first[2])
