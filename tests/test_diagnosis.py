"""The divergence rule, re-reading the batch that failed, and the diagnosis text (course_utils.diagnosis)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from course_utils.checkpoint import loader_state
from course_utils.data import TensorLoader
from course_utils.diagnosis import (
    DIVERGENCE_FACTOR,
    DIVERGENCE_WINDOW,
    diagnose,
    first_bad_step,
    replay_state,
    reread_batch,
)

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("losses, start, expected", [
    ([2.0, 1.0, 0.5], 0, None),
    ([2.0, 1.0, NAN, 0.5], 0, 2),
    ([2.0, INF], 0, 1),
    ([2.0, NAN, NAN], 2, 2),  # only from `start` on
    ([2.0, 1.0, 3000.0], 0, None),  # above 1000 x 2.0, but the median of (2, 1, 3000) is 2
    ([2.0, 2001.0], 0, None),  # median 1001.5
    ([2.0] * 9 + [5000.0], 0, None),  # one spike: the median over the last 10 stays at 2
    ([2.0] * 5 + [5000.0] * 6, 0, 9),  # from step 9, most of the last 10 are above 2000
    ([0.0, 1e9], 0, None),  # no positive first loss: only NaN/Inf count
    ([-1.0, 1e9, NAN], 0, 2),
])
def test_first_bad_step(losses, start, expected):
    assert first_bad_step(losses, start) == expected


def test_first_bad_step_at_the_threshold():
    limit = DIVERGENCE_FACTOR * 1.0
    assert first_bad_step([1.0] + [limit] * DIVERGENCE_WINDOW) is None  # not above
    assert first_bad_step([1.0] + [limit * 1.01] * DIVERGENCE_WINDOW) == 2  # median of (1, x, x) = x


@pytest.mark.parametrize("kind", ["tensor_loader", "dataloader_global_rng", "dataloader_generator", "list"])
def test_reread_batch_returns_the_batch_of_that_epoch_and_leaves_everything_as_found(kind):
    x, y = torch.arange(40.0).view(-1, 1), torch.arange(40)
    loader = {"tensor_loader": lambda: TensorLoader(x, y, batch_size=8, shuffle=True, seed=1),
              "dataloader_global_rng": lambda: DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True),
              "dataloader_generator": lambda: DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True,
                                                         generator=torch.Generator().manual_seed(2)),
              "list": lambda: [(x[i:i + 8], y[i:i + 8]) for i in range(0, 40, 8)]}[kind]()
    torch.manual_seed(0)
    list(loader)  # epoch 1
    state = replay_state(loader)
    epoch_2 = [yb.tolist() for _, yb in loader]
    rng, shuffle = torch.get_rng_state(), loader_state(loader)
    assert [reread_batch(loader, state, i)[1].tolist() for i in (0, 3)] == [epoch_2[0], epoch_2[3]]
    assert torch.equal(torch.get_rng_state(), rng)
    after = loader_state(loader)
    assert (after is None and shuffle is None) or torch.equal(after["generator"], shuffle["generator"])


def test_reread_batch_without_a_state_or_with_a_broken_loader_gives_none():
    assert reread_batch([(1, 2)], None, 0) is None

    class Broken:
        def __iter__(self):
            raise RuntimeError("cannot iterate twice")

    assert reread_batch(Broken(), replay_state(Broken()), 0) is None
    assert replay_state(iter([1])) is None  # a one-shot iterator cannot be replayed


def test_diagnose_names_a_data_problem_first_and_the_lr_otherwise():
    x, y = torch.ones(4, 2), torch.zeros(4, dtype=torch.long)
    clean = diagnose(step=9, epoch=1, batch_index=2, value=NAN, lr=0.5, reference=2.3, batch=(x, y))
    assert clean.startswith("Training stopped: the loss became nan at step 9 (batch 3 of epoch 2).")
    assert "  1. learning rate too large (lr=0.5)" in clean
    assert ("  3. bad data: NaN/Inf inputs or badly scaled inputs (none in batch 3 of epoch 2: "
            "max |x| = 1)") in clean
    huge = diagnose(step=9, epoch=1, batch_index=2, value=NAN, lr=0.5, reference=2.3, batch=(x * 1e6, y))
    assert "  1. bad data: batch 3 of epoch 2 has badly scaled inputs (max |x| = 1e+06)" in huge
    labels = diagnose(step=0, epoch=0, batch_index=0, value=NAN, lr=0.5, reference=NAN, batch=(x, y - 100))
    assert "  1. bad data: every label in batch 1 of epoch 1 equals ignore_index (-100)" in labels
    diverged = diagnose(step=5, epoch=0, batch_index=5, value=3e5, lr=1e6, reference=0.7, batch=None)
    assert ("the loss diverged to 3e+05 at step 5 (batch 6 of epoch 1), over 1000x its first "
            "value 0.7") in diverged
    assert "could not be re-read" in diverged
