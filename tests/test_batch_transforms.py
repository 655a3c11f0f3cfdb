"""Tests for course_utils.batch_transforms: oracle tests against torchvision's crop of a padded
image, reproducibility from the generator, exact values and bad input."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms import v2

from course_utils.batch_transforms import (
    random_erase,
    random_hflip,
    random_rescale,
    random_shift,
    resize_batch,
    shift_images,
)


@pytest.fixture
def images():
    return torch.rand(6, 2, 9, 7, generator=torch.Generator().manual_seed(0))


def test_shift_images_equals_torchvision_crop_of_padded_image(images):
    dx, dy = torch.tensor([-2, -1, 0, 1, 2, 0]), torch.tensor([2, 0, -2, 1, -1, 0])
    got = shift_images(images, dx, dy, max_shift=2)
    for n, image in enumerate(images):
        want = v2.functional.crop(v2.functional.pad(image, [2]), 2 - int(dy[n]), 2 - int(dx[n]), 9, 7)
        torch.testing.assert_close(got[n], want, rtol=0, atol=0)


def test_shift_images_exact_values():
    x = torch.arange(9.0).view(1, 1, 3, 3)
    right_down = shift_images(x, torch.tensor([1]), torch.tensor([1]), max_shift=1)
    assert right_down[0, 0].tolist() == [[0, 0, 0], [0, 0, 1], [0, 3, 4]]


def test_random_shift_reproducible_in_range_and_per_image(images):
    first = random_shift(images, 2, generator=torch.Generator().manual_seed(3))
    again = random_shift(images, 2, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    copies = images[:1].expand(32, -1, -1, -1)
    shifted = random_shift(copies, 2, generator=torch.Generator().manual_seed(0))
    assert len({tuple(s.flatten().tolist()) for s in shifted}) > 10  # one draw per image
    candidates = [shift_images(images[:1], torch.tensor([dx]), torch.tensor([dy]), max_shift=2)[0]
                  for dx in range(-2, 3) for dy in range(-2, 3)]
    for s in shifted:  # every output is one of the 25 allowed shifts
        assert any(torch.equal(s, c) for c in candidates)


def test_random_shift_zero_is_identity(images):
    torch.testing.assert_close(random_shift(images, 0, generator=torch.Generator()), images)


def test_random_hflip_mirrors_some_images_and_leaves_global_rng(images):
    state = torch.random.get_rng_state()
    out = random_hflip(images.repeat(4, 1, 1, 1), generator=torch.Generator().manual_seed(0))
    assert torch.equal(state, torch.random.get_rng_state())
    mirrored = [torch.equal(o, i.flip(-1)) for o, i in zip(out, images.repeat(4, 1, 1, 1), strict=True)]
    kept = [torch.equal(o, i) for o, i in zip(out, images.repeat(4, 1, 1, 1), strict=True)]
    assert all(m or k for m, k in zip(mirrored, kept, strict=True)) and any(mirrored) and any(kept)
    torch.testing.assert_close(random_hflip(images, p=1.0, generator=torch.Generator()), images.flip(-1))
    torch.testing.assert_close(random_hflip(images, p=0.0, generator=torch.Generator()), images)


def test_random_rescale_draws_one_size_per_batch(images):
    sizes = {random_rescale(images, (5, 8, 11), generator=torch.Generator().manual_seed(s)).shape[-1]
             for s in range(20)}
    assert sizes == {5, 8, 11}
    assert resize_batch(images, 12).shape == (6, 2, 12, 12)
    square = torch.rand(2, 1, 8, 8)
    assert resize_batch(square, 8) is square


@pytest.mark.parametrize("bad", [torch.zeros(3, 4, 4), torch.zeros(2, 1, 4, 4, dtype=torch.uint8), "x"])
def test_bad_images_raise_type_error(bad):
    with pytest.raises(TypeError, match="float tensor"):
        random_shift(bad, 1, generator=torch.Generator())


def test_bad_values_raise_value_error(images):
    generator = torch.Generator()
    with pytest.raises(ValueError, match="max_shift"):
        random_shift(images, 7, generator=generator)
    with pytest.raises(ValueError, match="max_shift"):
        random_shift(images, 1.5, generator=generator)
    with pytest.raises(ValueError, match="dx and dy"):
        shift_images(images, torch.zeros(2, dtype=torch.long), torch.zeros(6, dtype=torch.long), max_shift=1)
    with pytest.raises(ValueError, match="p must be"):
        random_hflip(images, p=2, generator=generator)
    with pytest.raises(ValueError, match="sizes"):
        random_rescale(images, (), generator=generator)
    with pytest.raises(ValueError, match="size must be"):
        resize_batch(images, 2)
    with pytest.raises(TypeError, match="generator"):
        random_shift(images, 1, generator=0)


def test_random_erase_blanks_one_box_per_chosen_image(images):
    ones = torch.ones(64, 1, 20, 20)
    out = random_erase(ones, p=0.5, scale=(0.1, 0.2), generator=torch.Generator().manual_seed(0))
    erased = (out == 0).flatten(1).sum(1)
    assert 10 < int((erased > 0).sum()) < 54  # about half the images
    for image, count in zip(out, erased.tolist(), strict=True):
        if count:  # the zeros form one rectangle covering roughly 10-20% of the image
            rows, cols = (image[0] == 0).any(1).nonzero(), (image[0] == 0).any(0).nonzero()
            height, width = int(rows.max() - rows.min()) + 1, int(cols.max() - cols.min()) + 1
            assert height * width == count and 0.05 * 400 <= count <= 0.3 * 400
    torch.testing.assert_close(random_erase(images, p=0.0, generator=torch.Generator()), images)
    with pytest.raises(ValueError, match="scale"):
        random_erase(images, scale=(0.5, 0.1), generator=torch.Generator())
