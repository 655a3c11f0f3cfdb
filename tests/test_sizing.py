"""The size policy: per-device defaults, the COURSE_SCALE override, clamping with a notice."""

import pytest

from course_utils.sizing import DEFAULT_SCALE, SizePolicy, size_policy


@pytest.fixture(autouse=True)
def no_override(monkeypatch):
    monkeypatch.delenv("COURSE_SCALE", raising=False)


@pytest.mark.parametrize("device, scale", [("cpu", 1.0), ("cuda", 4.0), ("mps", 2.0)])
def test_default_scale_per_device(device, scale):
    policy = size_policy(device)
    assert policy.scale == scale == DEFAULT_SCALE[device]
    assert policy.origin == "default" and policy.device == device
    assert "default" in str(policy) and "COURSE_SCALE" in str(policy)


def test_cuda_index_counts_as_cuda():
    assert size_policy("cuda:1").scale == 4.0


def test_override_from_the_environment(monkeypatch):
    monkeypatch.setenv("COURSE_SCALE", "0.5")
    policy = size_policy("cuda")
    assert policy.scale == 0.5 and policy.origin == "COURSE_SCALE"
    assert "set by COURSE_SCALE" in str(policy)


@pytest.mark.parametrize("text", ["0", "-1", "abc", "nan", "inf", "65", "1e9"])
def test_bad_override_names_what_is_allowed(monkeypatch, text):
    monkeypatch.setenv("COURSE_SCALE", text)
    with pytest.raises(ValueError, match="COURSE_SCALE.*above 0 and at most 64"):
        size_policy("cpu")


def test_count_scales_and_rounds():
    policy = SizePolicy(4.0, "cuda", "default")
    assert policy.count(12_000, name="TRAIN_SIZE") == 48_000
    assert SizePolicy(0.5, "cpu", "COURSE_SCALE").count(5, name="EPOCHS") == 2  # round half to even
    assert SizePolicy(0.01, "cpu", "COURSE_SCALE").count(5, name="EPOCHS", minimum=2) == 2


def test_count_power_and_unscaled():
    policy = SizePolicy(4.0, "cuda", "default")
    assert policy.count(5, name="SEEDS", power=0) == 5
    assert policy.count(10, name="TRIALS", power=0.5) == 20
    assert policy.count(5_000, name="VAL_SIZE", scaled=False) == 5_000


def test_count_clamps_to_available_with_one_line_notice(capsys):
    policy = SizePolicy(4.0, "cuda", "default")
    assert policy.count(12_000, name="TRAIN_SIZE", available=1_077) == 1_077
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "TRAIN_SIZE = 48,000" in out and "1,077" in out


def test_count_within_available_is_silent(capsys):
    assert SizePolicy(1.0, "cpu", "default").count(100, name="N", available=100) == 100
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("kwargs", [{"base": 0}, {"base": 2.5}, {"base": True}, {"base": 10, "minimum": 0},
                                    {"base": 10, "available": 0}])
def test_count_refuses_bad_sizes(kwargs):
    with pytest.raises(ValueError, match="must be a positive int"):
        SizePolicy(1.0, "cpu", "default").count(name="N", **kwargs)


def test_reference_scale():
    assert SizePolicy(1.0, "cpu", "default").is_reference
    assert not SizePolicy(4.0, "cuda", "default").is_reference
