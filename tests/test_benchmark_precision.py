"""benchmarks/precision.py: the arms of notebook 11, the visible TF32 switch, the slow-fp16 guard."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from course_utils.sizing import SizePolicy

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "precision.py"
spec = importlib.util.spec_from_file_location("precision_benchmark", SCRIPT)
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def labels(case):
    return [arm.label for arm in case[4]], [arm.label for arm in case[5]]


def test_cases_have_the_notebook_s_arms_and_sizes():
    x, y = torch.zeros(300, 1, 28, 28), torch.zeros(300, dtype=torch.long)
    cases = bench.cases(SizePolicy(1.0, "cpu", "default"), torch.device("cpu"), x, y, fp16_slow=False)
    assert set(cases) == {"small_cnn", "wide_mlp", "small_resnet"}
    assert len(cases["small_cnn"][1]) == 128 and len(cases["wide_mlp"][1]) == 256
    assert tuple(cases["small_resnet"][1].shape) == (64, 3, 32, 32)
    timed, alone = labels(cases["small_resnet"])
    assert timed == ["fp32", "fp32 + channels_last", "TF32 + channels_last",
                     "bf16 autocast + channels_last", "fp16 autocast + channels_last"] and alone == []
    assert labels(cases["wide_mlp"]) == (["fp32", "TF32", "bf16 autocast", "fp16 autocast"], [])


def test_slow_fp16_is_timed_alone():
    x, y = torch.zeros(300, 1, 28, 28), torch.zeros(300, dtype=torch.long)
    cases = bench.cases(SizePolicy(1.0, "cpu", "default"), torch.device("cpu"), x, y, fp16_slow=True)
    assert labels(cases["wide_mlp"]) == (["fp32", "TF32", "bf16 autocast"], ["fp16 autocast"])
    assert labels(cases["small_resnet"])[1] == ["fp16 autocast + channels_last"]


def test_gpu_sizes():
    x, y = torch.zeros(2000, 1, 28, 28), torch.zeros(2000, dtype=torch.long)
    cases = bench.cases(SizePolicy(4.0, "cuda", "default"), torch.device("cpu"), x, y, fp16_slow=False)
    assert len(cases["small_cnn"][1]) == 512 and len(cases["wide_mlp"][1]) == 1024
    assert cases["wide_mlp"][0][1].out_features == 2048  # width x2 at scale 4
    assert cases["small_resnet"][1].shape[0] == 256 and cases["small_resnet"][0][0].out_channels == 32


def test_tf32_context_sets_and_restores_the_flags():
    before = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    with bench.tf32(True):
        assert torch.get_float32_matmul_precision() == "high" and torch.backends.cudnn.allow_tf32
        with bench.tf32(False):
            assert torch.get_float32_matmul_precision() == "highest"
            assert not torch.backends.cudnn.allow_tf32
        assert torch.get_float32_matmul_precision() == "high"
    assert (torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32) == before
