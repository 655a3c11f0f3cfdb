"""Tests for course_utils.augment: oracle tests against torchvision's MixUp/CutMix, exact values,
reproducibility from the generator, and bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.transforms import v2

from course_utils.augment import (
    AUGMENTATIONS,
    AugmentedLoader,
    RandomStretch,
    cutmix,
    make_augmentation,
    mix_images,
    mixup,
    paste_box,
    per_sample,
    sample_box,
    sample_lam,
    tta_logits,
)


@pytest.fixture
def batch():
    generator = torch.Generator().manual_seed(0)
    return torch.rand(8, 1, 12, 10, generator=generator), torch.tensor([0, 1, 2, 3, 4, 0, 1, 2])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_mix_images_equals_torchvision_mixup(batch, seed):
    x, y = batch
    torch.manual_seed(seed)
    x_tv, y_tv = v2.MixUp(num_classes=5)(x, y)
    lam = y_tv[1, y[1]].item()  # y[1] != y[0], so this entry is exactly lam
    x_ours, y_ours = mix_images(x, y, lam, num_classes=5)
    torch.testing.assert_close(x_ours, x_tv)
    torch.testing.assert_close(y_ours, y_tv)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_paste_box_equals_torchvision_cutmix(batch, seed):
    x, y = batch
    torch.manual_seed(seed)
    x_tv, y_tv = v2.CutMix(num_classes=5)(x, y)
    changed = (x_tv != x).any(0).any(0)  # random pixels: every pasted pixel differs
    rows, cols = changed.any(1).nonzero(), changed.any(0).nonzero()
    box = ((int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1)
           if changed.any() else (0, 0, 0, 0))
    x_ours, y_ours = paste_box(x, y, box, num_classes=5)
    torch.testing.assert_close(x_ours, x_tv)
    torch.testing.assert_close(y_ours, y_tv)


def test_mix_images_exact_values():
    x = torch.tensor([1.0, 3.0]).view(2, 1, 1, 1)
    mixed, targets = mix_images(x, torch.tensor([0, 1]), 0.75, num_classes=2)
    assert mixed.flatten().tolist() == [0.75 * 1 + 0.25 * 3, 0.75 * 3 + 0.25 * 1]
    assert targets.tolist() == [[0.75, 0.25], [0.25, 0.75]]


def test_soft_target_loss_equals_paired_loss(batch):
    x, y = batch
    mixed, targets = mix_images(x, y, 0.3, num_classes=5)
    logits = torch.randn(8, 5, generator=torch.Generator().manual_seed(1))
    paired = 0.3 * nn.functional.cross_entropy(logits, y) + 0.7 * nn.functional.cross_entropy(
        logits, y.roll(1, 0))
    torch.testing.assert_close(nn.functional.cross_entropy(logits, targets), paired)


def test_paste_box_exact_area_and_pixels():
    x = torch.stack([torch.zeros(1, 4, 4), torch.ones(1, 4, 4)])
    mixed, targets = paste_box(x, torch.tensor([0, 1]), (1, 0, 3, 2), num_classes=2)
    assert mixed[0, 0, 0:2, 1:3].eq(1).all() and mixed[0].sum() == 4  # 2x2 pasted from image 1
    assert targets[0].tolist() == [0.75, 0.25]


def test_mixup_and_cutmix_are_reproducible_and_leave_global_rng_alone(batch):
    x, y = batch
    state = torch.get_rng_state()
    for fn in (mixup, cutmix):
        a = fn(x, y, num_classes=5, generator=torch.Generator().manual_seed(3))
        b = fn(x, y, num_classes=5, generator=torch.Generator().manual_seed(3))
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        assert torch.allclose(a[1].sum(1), torch.ones(8))
    assert torch.equal(torch.get_rng_state(), state)


def test_sample_lam_and_box_ranges():
    generator = torch.Generator().manual_seed(0)
    lams = [sample_lam(0.2, generator) for _ in range(200)]
    assert all(0.0 <= lam <= 1.0 for lam in lams)
    assert sum(lam < 0.1 or lam > 0.9 for lam in lams) > 100  # Beta(0.2, 0.2) is U-shaped
    for _ in range(50):
        x1, y1, x2, y2 = sample_box(0.5, 12, 10, generator)
        assert 0 <= x1 <= x2 <= 10 and 0 <= y1 <= y2 <= 12
    x1, y1, x2, y2 = sample_box(1.0, 12, 10, generator)
    assert x1 == x2 and y1 == y2  # lam = 1 keeps everything: an empty box


def test_sample_box_full_mix_covers_half_sides():
    x1, y1, x2, y2 = sample_box(0.0, 10, 10, torch.Generator().manual_seed(0))
    assert x2 - x1 <= 10 and (x2 - x1) >= 5 and (y2 - y1) >= 5


@pytest.mark.parametrize("bad", [
    dict(x=torch.rand(2, 4, 4), y=torch.tensor([0, 1])),  # not 4-D
    dict(x=torch.rand(2, 1, 4, 4), y=torch.tensor([0.0, 1.0])),  # float labels
    dict(x=torch.rand(2, 1, 4, 4), y=torch.tensor([0, 1, 1])),  # wrong length
    dict(x=torch.zeros(2, 1, 4, 4, dtype=torch.uint8), y=torch.tensor([0, 1])),  # integer images
])
def test_bad_batches_raise_type_error(bad):
    with pytest.raises(TypeError):
        mix_images(bad["x"], bad["y"], 0.5, num_classes=3)


def test_bad_values_raise_value_error(batch):
    x, y = batch
    generator = torch.Generator()
    with pytest.raises(ValueError, match="lam"):
        mix_images(x, y, 1.5, num_classes=5)
    with pytest.raises(ValueError, match="num_classes"):
        mix_images(x, y, 0.5, num_classes=1)
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        mix_images(x, y, 0.5, num_classes=3)  # label 4 is out of range
    with pytest.raises(ValueError, match="alpha"):
        mixup(x, y, num_classes=5, alpha=0, generator=generator)
    with pytest.raises(TypeError, match="generator"):
        cutmix(x, y, num_classes=5, generator=0)
    with pytest.raises(ValueError, match="box"):
        paste_box(x, y, (0, 0, 11, 4), num_classes=5)
    with pytest.raises(ValueError, match="box"):
        paste_box(x, y, (3, 0, 2, 4), num_classes=5)


def test_batch_call_shares_parameters_per_sample_does_not():
    image = torch.rand(1, 16, 16, generator=torch.Generator().manual_seed(0))
    x = image.expand(6, 1, 16, 16).contiguous()
    transform = v2.RandomAffine(degrees=0, translate=(0.3, 0.3))
    torch.manual_seed(0)
    together = transform(x)
    assert all(torch.equal(together[0], other) for other in together)  # one draw for all six
    torch.manual_seed(0)
    separate = per_sample(transform, x)
    assert len({tuple(img.flatten().tolist()) for img in separate}) > 1


def test_per_sample_bad_input():
    with pytest.raises(TypeError):
        per_sample(v2.RandomHorizontalFlip(), torch.rand(1, 4, 4))
    with pytest.raises(TypeError, match="callable"):
        per_sample("flip", torch.rand(2, 1, 4, 4))


def test_random_stretch_keeps_size_and_area_roughly():
    image = torch.zeros(1, 21, 21)
    image[:, 6:15, 6:15] = 1.0
    torch.manual_seed(0)
    out = RandomStretch(0.5)(image)
    assert out.shape == image.shape
    assert out.sum().item() == pytest.approx(image.sum().item(), rel=0.25)  # area-preserving
    assert torch.equal(RandomStretch(0.0)(image), image)
    batch = RandomStretch(0.3)(image.expand(3, 1, 21, 21))
    assert batch.shape == (3, 1, 21, 21)
    with pytest.raises(ValueError, match="max_stretch"):
        RandomStretch(-1)
    with pytest.raises(TypeError):
        RandomStretch(0.2)(torch.zeros(21, 21))


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_make_augmentation_shapes_and_identity_at_zero(name):
    x = torch.rand(3, 3, 12, 18, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    assert per_sample(make_augmentation(name, 0.8, size=(12, 18)), x).shape == x.shape
    torch.testing.assert_close(per_sample(make_augmentation(name, 0.0, size=(12, 18)), x), x,
                               atol=1e-5, rtol=0)


def test_make_augmentation_bad_input():
    with pytest.raises(ValueError, match="hflip"):
        make_augmentation("mirror", 0.5, size=28)
    with pytest.raises(ValueError, match="strength"):
        make_augmentation("shear", 2.0, size=28)


def test_augmented_loader_applies_fn_every_epoch(tiny_loader):
    calls = []

    def double(x, y):
        calls.append(len(x))
        return 2 * x, y

    loader = AugmentedLoader(tiny_loader, double)
    assert len(loader) == len(tiny_loader)
    for _ in range(2):
        for (x, _y), (x0, _) in zip(loader, tiny_loader, strict=True):
            assert x.shape == x0.shape
    assert sum(calls) == 2 * 256
    with pytest.raises(TypeError, match="callable"):
        AugmentedLoader(tiny_loader, None)


def test_tta_identity_view_equals_plain_model(tiny_data):
    x, y = tiny_data
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    torch.testing.assert_close(tta_logits(model, x, lambda b: [b], average="logits"), model(x))
    torch.testing.assert_close(tta_logits(model, x, lambda b: [b]), model(x).log_softmax(1))


def test_tta_averages_probabilities_and_restores_mode(tiny_data):
    x, y = tiny_data
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2), nn.Dropout(0.5))
    model.train()
    views = lambda b: [b, b.flip(-1)]  # noqa: E731
    with torch.no_grad():
        model.eval()
        want = ((model(x).softmax(1) + model(x.flip(-1)).softmax(1)) / 2).log()
        model.train()
    torch.testing.assert_close(tta_logits(model, x, views), want)
    assert model.training


def test_tta_bad_input(tiny_data):
    x, y = tiny_data
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    with pytest.raises(ValueError, match="probs"):
        tta_logits(model, x, lambda b: [b], average="median")
    with pytest.raises(ValueError, match="views"):
        tta_logits(model, x, lambda b: [])
