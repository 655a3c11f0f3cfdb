"""In-memory datasets, statistics, splits and loaders (course_utils.data)."""

from __future__ import annotations

import dataclasses
import gzip
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

import course_utils.datasets as ds
from course_utils.data import (
    ImageDataset,
    TensorLoader,
    dataloader,
    get_dataset,
    is_fallback,
    mean_std_one_batch,
    mean_std_streaming,
    subset,
    tensor_loader,
    train_val_split,
)
from course_utils.datasets import FASHION_CLASSES, locate_dataset

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DIGIT_CLASSES = tuple(str(d) for d in range(10))


def make_dataset(n: int = 10, channels: int = 1, size: int = 5, seed: int = 0,
                 transform=None) -> ImageDataset:
    """Random uint8 images, each channel with its own brightness; targets are 0..n-1 (ids)."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, channels, size, size), generator=generator)
    images = (images * torch.linspace(1.0, 0.3, channels).view(1, -1, 1, 1)).to(torch.uint8)
    return ImageDataset(images, torch.arange(n), DIGIT_CLASSES, name="synthetic", source="test",
                        transform=transform)


def snapshot(root: Path) -> dict[str, tuple]:
    entries = {}
    for path in [root, *sorted(root.rglob("*"))]:
        info = path.lstat()
        entries[str(path.relative_to(root))] = (stat.S_IFMT(info.st_mode), info.st_size,
                                                info.st_mtime_ns, stat.S_IMODE(info.st_mode))
    return entries


def ids(batches) -> list[list[int]]:
    return [y.tolist() for _, y in batches]


# ---------------------------------------------------------------------------------------------
# get_dataset: synthetic data, fallback, errors


def write_mnist(root: Path, n_train: int = 9, n_test: int = 4) -> dict[bool, np.ndarray]:
    rng = np.random.default_rng(0)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images = {}
    for train, prefix, n in ((True, "train", n_train), (False, "t10k", n_test)):
        images[train] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        head = (0x0803).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (n, 28, 28))
        (raw / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(head + images[train].tobytes()))
        head = (0x0801).to_bytes(4, "big") + n.to_bytes(4, "big")
        (raw / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(head + labels.tobytes()))
    return images


def test_get_dataset_reads_synthetic_mnist(tmp_path, monkeypatch, capsys):
    images = write_mnist(tmp_path)
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    train = get_dataset("mnist")
    test = get_dataset("mnist", train=False, transform=lambda x: x * 2)
    assert capsys.readouterr().out == ""  # real data: no notice
    assert len(train) == 9 and len(test) == 4
    assert train.classes == DIGIT_CLASSES and train.name == "mnist"
    assert train.source.startswith("data_dir ")
    torch.testing.assert_close(train.images[:, 0], torch.from_numpy(images[True]))
    image, label = test[0]
    torch.testing.assert_close(image, torch.from_numpy(images[False][0]).float().unsqueeze(0) / 255 * 2)
    assert isinstance(label, int)


@pytest.fixture
def no_data_anywhere(monkeypatch):
    """No system copy, whatever machine the tests run on."""
    for name in ("fashion_mnist", "mnist", "cifar10"):
        monkeypatch.setitem(ds.SPECS, name, dataclasses.replace(ds.SPECS[name], system_dirs=()))


@pytest.fixture(params=["offline", "download_fails"])
def no_network(request, monkeypatch, no_data_anywhere):
    """Both ways the network can be missing: COURSE_OFFLINE, or a download that fails."""
    calls = []

    def download(spec):
        calls.append(spec.name)
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(ds, "_download", download)
    if request.param == "offline":
        monkeypatch.setenv("COURSE_OFFLINE", "1")
    yield request.param
    if request.param == "offline":
        assert calls == [], "COURSE_OFFLINE must not try to download"
    else:
        assert calls, "the download was never attempted"


def test_fashion_mnist_falls_back_to_digits_with_a_notice(no_network, capsys):
    train = get_dataset("fashion_mnist")
    out = capsys.readouterr().out
    assert out.startswith("NOTICE: fashion_mnist is not available")
    assert "scikit-learn's bundled 8x8 digits" in out
    assert "make data" in out and "COURSE_DATA_DIR" in out and "internet" in out
    expected = ("download: skipped (download=False or COURSE_OFFLINE is set)"
                if no_network == "offline" else "download: failed (OSError")
    assert expected in out
    assert train.images.dtype == torch.uint8 and train.images.shape == (1437, 1, 28, 28)
    assert train.classes == DIGIT_CLASSES and train.source == "fallback: scikit-learn digits"
    assert train.is_fallback and is_fallback(train.source)
    assert set(train.targets.tolist()) == set(range(10))
    image, _ = train[0]
    assert image.shape == (1, 28, 28) and 0 <= image.min() and image.max() <= 1

    test = get_dataset("fashion_mnist", train=False)
    assert test.images.shape == (360, 1, 28, 28)
    assert "NOTICE" in capsys.readouterr().out  # said every time, not only once


def test_cifar10_fallback_is_three_channel_32x32(no_network, capsys):
    data = get_dataset("cifar10", train=False)
    assert "NOTICE: cifar10 is not available" in capsys.readouterr().out
    assert data.images.shape == (360, 3, 32, 32) and data.images.dtype == torch.uint8
    assert data.images.is_contiguous()
    torch.testing.assert_close(data.images[:, 0], data.images[:, 2])  # grey digits in 3 channels


def test_no_fallback_raises_listing_what_was_tried(no_network, capsys):
    with pytest.raises(FileNotFoundError) as info:
        get_dataset("fashion_mnist", fallback=False)
    text = str(info.value)
    assert text.startswith("fashion_mnist is not available. Tried:")
    assert "cache " in text and "not there" in text and "download:" in text
    assert capsys.readouterr().out == ""  # no notice when nothing is substituted


def test_download_false_never_tries_the_network(monkeypatch, no_data_anywhere, capsys):
    monkeypatch.setattr(ds, "_download", lambda spec: pytest.fail("download=False downloaded"))
    data = get_dataset("mnist", download=False)
    assert data.source == "fallback: scikit-learn digits"
    assert "NOTICE" in capsys.readouterr().out


def test_digits_needs_no_notice(capsys):
    data = get_dataset("digits")
    assert data.source == "scikit-learn's bundled digits" and len(data) == 1437
    assert capsys.readouterr().out == ""


def test_unknown_name_lists_the_choices():
    for function in (get_dataset, locate_dataset):
        with pytest.raises(ValueError, match="unknown dataset 'fashion'") as info:
            function("fashion")
        assert "'fashion_mnist'" in str(info.value) and "'cifar10'" in str(info.value)


@pytest.mark.skipif(not (SHARED_DATA / "FashionMNIST" / "raw").is_dir(),
                    reason=f"the real Fashion-MNIST is not at {SHARED_DATA / 'FashionMNIST' / 'raw'}")
def test_real_fashion_mnist_from_shared_data(monkeypatch, capsys):
    before = snapshot(SHARED_DATA)
    monkeypatch.setenv("COURSE_DATA_DIR", str(SHARED_DATA))
    train = get_dataset("fashion_mnist", fallback=False)
    test = get_dataset("fashion_mnist", train=False, fallback=False)
    assert capsys.readouterr().out == ""
    assert train.images.shape == (60_000, 1, 28, 28) and test.images.shape == (10_000, 1, 28, 28)
    assert train.images.dtype == torch.uint8
    assert train.classes == FASHION_CLASSES and len(train.classes) == 10
    assert set(train.targets.tolist()) == set(range(10)) == set(test.targets.tolist())
    assert torch.bincount(train.targets).tolist() == [6000] * 10  # the published, balanced set
    assert train.source == f"data_dir {SHARED_DATA / 'FashionMNIST' / 'raw'}"
    assert not train.is_fallback and not is_fallback(train.source)
    assert snapshot(SHARED_DATA) == before


# ---------------------------------------------------------------------------------------------
# ImageDataset


def test_image_dataset_validates_its_inputs():
    images = torch.zeros(4, 1, 3, 3, dtype=torch.uint8)
    kwargs = {"name": "x", "source": "test"}
    with pytest.raises(ValueError, match="uint8"):
        ImageDataset(images.float(), torch.zeros(4), DIGIT_CLASSES, **kwargs)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        ImageDataset(images[:, 0], torch.zeros(4), DIGIT_CLASSES, **kwargs)
    with pytest.raises(ValueError, match=r"targets must have shape \(4,\)"):
        ImageDataset(images, torch.zeros(3), DIGIT_CLASSES, **kwargs)
    with pytest.raises(ValueError, match="targets"):
        ImageDataset(images, torch.zeros(4, 1), DIGIT_CLASSES, **kwargs)


def test_image_dataset_scales_to_unit_range_and_applies_the_transform():
    images = torch.tensor([0, 51, 255, 128], dtype=torch.uint8).view(1, 1, 2, 2).repeat(3, 1, 1, 1)
    data = ImageDataset(images, torch.tensor([2, 0, 1], dtype=torch.int32), ("a", "b", "c"),
                        name="tiny", source="test")
    image, label = data[2]
    torch.testing.assert_close(image, torch.tensor([[[0.0, 0.2], [1.0, 128 / 255]]]))
    assert image.dtype == torch.float32 and label == 1 and type(label) is int
    assert data.targets.dtype == torch.int64
    assert data.images.dtype == torch.uint8 and data.images[0, 0, 1, 0] == 255  # storage untouched
    assert len(data) == 3 and "tiny" in repr(data) and "3 images of 1x2x2" in repr(data)

    data.transform = lambda x: 1 - x
    flipped, _ = data[0]
    torch.testing.assert_close(flipped, 1 - image)

    x, y = data.tensors()
    assert x.shape == (3, 1, 2, 2) and x.max() == 1.0 and y.tolist() == [2, 0, 1]


def test_select_keeps_rows_classes_and_transform():
    def transform(x):
        return x + 1

    data = make_dataset(n=8, transform=transform)
    picked = data.select(torch.tensor([5, 1, 6]))
    assert len(picked) == 3 and picked.targets.tolist() == [5, 1, 6]
    assert torch.equal(picked.images[0], data.images[5])
    assert picked.transform is transform and picked.classes == data.classes
    assert picked.name == data.name and picked.source == data.source
    torch.testing.assert_close(picked[1][0], data[1][0])


# ---------------------------------------------------------------------------------------------
# mean and std


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("batch_size", [1024, 3, 10, 1])
def test_mean_std_streaming_matches_one_batch(channels, batch_size):
    data = make_dataset(n=10, channels=channels, seed=channels)
    mean, std = mean_std_one_batch(data)
    streamed_mean, streamed_std = mean_std_streaming(data, batch_size=batch_size)
    assert mean.shape == std.shape == streamed_mean.shape == (channels,)
    torch.testing.assert_close(streamed_mean, mean)
    torch.testing.assert_close(streamed_std, std)
    # and against a direct computation, so both are right rather than equally wrong
    pixels = data.images.double().div(255).transpose(0, 1).reshape(channels, -1)
    torch.testing.assert_close(streamed_mean, pixels.mean(1).float())
    torch.testing.assert_close(streamed_std, pixels.std(1).float())
    if channels == 3:
        assert mean[0] > mean[2] + 0.2  # channels are kept apart


def test_mean_std_streaming_bad_input():
    data = make_dataset(n=4)
    for batch_size in (0, -1):
        with pytest.raises(ValueError, match="batch_size must be >= 1"):
            mean_std_streaming(data, batch_size=batch_size)
    single = ImageDataset(torch.zeros(1, 1, 1, 1, dtype=torch.uint8), torch.zeros(1), ("a",),
                          name="one", source="test")
    with pytest.raises(ValueError, match="at least 2 pixels"):
        mean_std_streaming(single)


# ---------------------------------------------------------------------------------------------
# splits


def test_train_val_split_sizes_disjoint_and_seeded():
    data = make_dataset(n=50)
    state = torch.get_rng_state()
    train, val = train_val_split(data, 10)
    assert torch.equal(torch.get_rng_state(), state)  # its own generator
    assert len(train) == 40 and len(val) == 10
    train_ids, val_ids = set(train.targets.tolist()), set(val.targets.tolist())
    assert not train_ids & val_ids and train_ids | val_ids == set(range(50))
    assert val.targets.tolist() != list(range(10))  # random, not the first rows

    again_train, again_val = train_val_split(data, 10)
    assert again_val.targets.tolist() == val.targets.tolist()
    assert again_train.targets.tolist() == train.targets.tolist()
    _, other_val = train_val_split(data, 10, seed=1)
    assert other_val.targets.tolist() != val.targets.tolist()


@pytest.mark.parametrize("val_size", [0, -1, 50, 51, 10.0, "10"])
def test_train_val_split_bad_sizes(val_size):
    with pytest.raises(ValueError, match="val_size must be an int between 1 and 49"):
        train_val_split(make_dataset(n=50), val_size)


def test_subset_sizes_and_seeds():
    data = make_dataset(n=30)
    state = torch.get_rng_state()
    part = subset(data, 12)
    assert torch.equal(torch.get_rng_state(), state)
    assert len(part) == 12 and len(set(part.targets.tolist())) == 12
    assert subset(data, 12).targets.tolist() == part.targets.tolist()
    assert subset(data, 12, seed=3).targets.tolist() != part.targets.tolist()
    assert sorted(subset(data, 30).targets.tolist()) == list(range(30))  # the whole set is allowed


@pytest.mark.parametrize("size", [0, -3, 31, 2.5])
def test_subset_bad_sizes(size):
    with pytest.raises(ValueError, match="size must be an int between 1 and 30"):
        subset(make_dataset(n=30), size)


# ---------------------------------------------------------------------------------------------
# TensorLoader


def ten():
    return torch.arange(10.0).view(10, 1), torch.arange(10)


@pytest.mark.parametrize("drop_last, sizes", [(False, [3, 3, 3, 1]), (True, [3, 3, 3])])
def test_tensor_loader_length_and_order_without_shuffle(drop_last, sizes):
    x, y = ten()
    loader = TensorLoader(x, y, batch_size=3, drop_last=drop_last)
    batches = list(loader)
    assert len(loader) == len(sizes) == len(batches)
    assert [len(b) for b, _ in batches] == sizes
    assert torch.cat([b for _, b in batches]).tolist() == list(range(sum(sizes)))
    for xb, yb in batches:
        assert torch.equal(xb[:, 0].long(), yb)  # x and y stay paired
    assert ids(loader) == ids(batches)  # a second epoch without shuffle is the same


@pytest.mark.parametrize("batch_size, drop_last, length", [(5, False, 2), (5, True, 2), (20, False, 1),
                                                          (20, True, 0), (1, True, 10)])
def test_tensor_loader_length_at_the_edges(batch_size, drop_last, length):
    x, y = ten()
    loader = TensorLoader(x, y, batch_size=batch_size, drop_last=drop_last)
    assert len(loader) == length == len(list(loader))


def test_shuffled_epochs_see_every_example_once():
    x, y = ten()
    loader = TensorLoader(x, y, batch_size=4, shuffle=True, seed=0)
    epochs = []
    for _ in range(3):
        batches = list(loader)
        for xb, yb in batches:
            assert torch.equal(xb[:, 0].long(), yb)
        order = torch.cat([yb for _, yb in batches]).tolist()
        assert sorted(order) == list(range(10))
        epochs.append(order)
    assert epochs[0] != list(range(10))
    assert epochs[0] != epochs[1] or epochs[1] != epochs[2]  # reshuffled every epoch

    dropped = TensorLoader(x, y, batch_size=4, shuffle=True, drop_last=True, seed=0)
    order = torch.cat([yb for _, yb in dropped]).tolist()
    assert len(order) == 8 and len(set(order)) == 8


def test_tensor_loader_seed_reproduces_and_leaves_global_rng_alone():
    x, y = ten()
    state = torch.get_rng_state()
    first = TensorLoader(x, y, batch_size=3, shuffle=True, seed=7)
    second = TensorLoader(x, y, batch_size=3, shuffle=True, seed=7)
    assert [ids(first) for _ in range(2)] == [ids(second) for _ in range(2)]
    assert torch.equal(torch.get_rng_state(), state)
    other = TensorLoader(x, y, batch_size=3, shuffle=True, seed=8)
    assert ids(other) != ids(TensorLoader(x, y, batch_size=3, shuffle=True, seed=7))


def test_tensor_loader_state_dict_reproduces_the_next_epoch():
    x, y = ten()
    loader = TensorLoader(x, y, batch_size=3, shuffle=True, seed=0)
    list(loader)
    state = loader.state_dict()
    expected = ids(loader)
    resumed = TensorLoader(x, y, batch_size=3, shuffle=True, seed=123)
    list(resumed)  # an epoch of its own stream first
    resumed.load_state_dict(state)
    assert ids(resumed) == expected
    assert ids(resumed) == ids(loader)  # and they stay in step afterwards


def test_tensor_loader_without_seed_follows_torch_manual_seed():
    x, y = ten()
    torch.manual_seed(3)
    first = ids(TensorLoader(x, y, batch_size=3, shuffle=True))
    torch.manual_seed(3)
    second = ids(TensorLoader(x, y, batch_size=3, shuffle=True))
    torch.manual_seed(4)
    third = ids(TensorLoader(x, y, batch_size=3, shuffle=True))
    assert first == second
    assert first != third


def test_tensor_loader_bad_input():
    x, y = ten()
    with pytest.raises(ValueError, match="same length, got 10 and 9"):
        TensorLoader(x, y[:9], batch_size=2)
    for batch_size in (0, -1, 2.0, None):
        with pytest.raises(ValueError, match="batch_size must be a positive int"):
            TensorLoader(x, y, batch_size=batch_size)


# ---------------------------------------------------------------------------------------------
# tensor_loader and dataloader


@pytest.mark.parametrize("channels", [1, 3])
def test_tensor_loader_normalizes_with_the_dataset_statistics(channels):
    data = make_dataset(n=40, channels=channels, size=6)
    mean, std = mean_std_streaming(data)
    loader = tensor_loader(data, batch_size=16, normalize=(mean, std))
    assert isinstance(loader, TensorLoader) and len(loader) == 3
    x = torch.cat([xb for xb, _ in loader])
    assert x.dtype == torch.float32 and x.shape == (40, channels, 6, 6)
    per_channel = x.transpose(0, 1).reshape(channels, -1)
    torch.testing.assert_close(per_channel.mean(1), torch.zeros(channels), atol=1e-5, rtol=0)
    torch.testing.assert_close(per_channel.std(1), torch.ones(channels), atol=1e-4, rtol=0)
    # Python lists work too, and the images of the dataset are not modified.
    listed = tensor_loader(data, batch_size=40, normalize=(mean.tolist(), std.tolist()))
    torch.testing.assert_close(next(iter(listed))[0], x)
    assert data.images.dtype == torch.uint8


def test_tensor_loader_without_normalize_keeps_unit_range():
    data = make_dataset(n=12, channels=3)
    loader = tensor_loader(data, batch_size=5, shuffle=True, seed=0, drop_last=True, device="cpu")
    assert len(loader) == 2
    x, y = next(iter(loader))
    torch.testing.assert_close(x, data.images[y].float() / 255)
    one_value = tensor_loader(data, batch_size=12, normalize=(0.5, 0.5))  # one value for all channels
    torch.testing.assert_close(next(iter(one_value))[0], data.images.float() / 255 * 2 - 1)


def test_tensor_loader_bad_statistics():
    rgb, grey = make_dataset(n=4, channels=3), make_dataset(n=4, channels=1)
    with pytest.raises(ValueError, match="1 or 3 values per statistic, got 2 and 2"):
        tensor_loader(rgb, batch_size=2, normalize=([0.5, 0.5], [0.2, 0.2]))
    with pytest.raises(ValueError, match="1 or 1 values per statistic, got 3 and 1"):
        tensor_loader(grey, batch_size=2, normalize=([0.5, 0.5, 0.5], [0.2]))
    with pytest.raises(ValueError, match="std must be positive"):
        tensor_loader(rgb, batch_size=2, normalize=([0.5] * 3, [0.2, 0.0, 0.2]))
    with pytest.raises(ValueError, match="std must be positive"):
        tensor_loader(grey, batch_size=2, normalize=(0.5, -0.1))


@pytest.mark.parametrize("normalize", [(0.5, float("nan")), (float("nan"), 0.5),
                                       ([0.5, 0.5, float("inf")], [0.2] * 3)])
def test_tensor_loader_refuses_non_finite_statistics(normalize):
    """normalize=(0.5, nan) used to turn the whole dataset into NaN without a word."""
    data = make_dataset(n=4, channels=len(normalize[0]) if isinstance(normalize[0], list) else 1)
    with pytest.raises(ValueError, match="normalize needs finite numbers"):
        tensor_loader(data, batch_size=2, normalize=normalize)


@pytest.mark.parametrize("train", [None, 1, "test"])
def test_get_dataset_refuses_a_train_flag_that_is_not_a_bool(train, capsys):
    with pytest.raises(TypeError, match=r"train must be True \(the training split\) or False"):
        get_dataset("digits", train=train)
    assert capsys.readouterr().out == ""  # refused, not a fallback notice


def test_dataloader_with_a_seed_is_reproducible():
    data = make_dataset(n=20)
    first = ids(dataloader(data, batch_size=6, shuffle=True, seed=0))
    second = ids(dataloader(data, batch_size=6, shuffle=True, seed=0))
    other = ids(dataloader(data, batch_size=6, shuffle=True, seed=1))
    assert first == second and first != other
    assert sorted(sum(first, [])) == list(range(20))
    assert [len(b) for b in first] == [6, 6, 6, 2]
    assert ids(dataloader(data, batch_size=6, drop_last=True)) == [list(range(i, i + 6)) for i in (0, 6, 12)]
    images, _ = next(iter(dataloader(data, batch_size=4)))
    assert images.shape == (4, 1, 5, 5) and images.dtype == torch.float32


def test_course_split_scales_clamps_and_keeps_small_subsets_small(capsys):
    from course_utils.data import course_split
    from course_utils.sizing import SizePolicy

    data = make_dataset(n=400)
    gpu = SizePolicy(scale=4, device="cuda", origin="default")
    train, val = course_split(data, train_size=20, sizes=gpu, val_size=50)
    assert (len(train), len(val)) == (80, 50)  # the training subset grows with the scale...
    assert set(train.targets.tolist()).isdisjoint(val.targets.tolist())  # ...and never meets validation
    small, val_again = course_split(data, train_size=20, sizes=gpu, val_size=50, power=0)
    assert len(small) == 20 and torch.equal(val_again.targets, val.targets)  # power=0: the same everywhere
    clamped, _ = course_split(data, train_size=1000, sizes=gpu, val_size=50)
    assert len(clamped) == 350 and "TRAIN_SIZE" in capsys.readouterr().out  # clamped, with a notice


def test_is_fallback_tells_the_digits_from_any_real_source():
    images, labels = torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(2, dtype=torch.long)
    sources = {"fallback: scikit-learn digits": True, "data_dir /data/FashionMNIST/raw": False,
               "cache /root/.cache/x": False, "download": False, "system /usr/share/x": False}
    for source, fallback in sources.items():
        data = ImageDataset(images, labels, ("a",), name="fashion_mnist", source=source)
        assert data.is_fallback == fallback == is_fallback(source), source
