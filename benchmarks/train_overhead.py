"""How much does ``course_utils.train`` cost over a hand-written loop doing the same work?

Both arms run one epoch per call with the same model shape, optimizer, scheduler, metrics
(per-step loss and LR kept on-tensor, one sync per log interval), data and seed. The calls are
interleaved in A/B pairs (A = hand-written, B = ``train``) and the median of the per-pair
ratios B/A is reported, for an MLP at batch 64 (the worst case: about 0.5 ms per step on a
2-core CPU) and for the course's small CNN. Goals: <= 1.03 (MLP) and <= 1.01 (CNN).

Run: ``python benchmarks/train_overhead.py [--pairs 20]``. The last line is the worst ratio.
"""

from __future__ import annotations

import argparse
import copy
import statistics

import torch
from torch import nn

from course_utils.bench import compare
from course_utils.data import TensorLoader
from course_utils.hardware import get_device
from course_utils.models import mlp, small_cnn
from course_utils.train import train

LOG_EVERY = 50


def hand_written_epoch(model, loader, optimizer, scheduler, loss_fn, device):
    """The loop notebook 00 writes from scratch, with the same bookkeeping as ``train``."""
    model.train()
    losses, lrs, flushed = [], [], 0
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        lrs.append(optimizer.param_groups[0]["lr"])
        loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.detach())
        if len(losses) - flushed >= LOG_EVERY:
            torch.stack(losses[flushed:]).tolist()
            flushed = len(losses)
    return torch.stack(losses[flushed:]).tolist() if flushed < len(losses) else []


def arms(make_model, x, y, batch_size, device):
    """Two identical (model, optimizer, scheduler, loader) set-ups and one epoch for each arm."""
    torch.manual_seed(0)
    base = make_model().to(device)
    setups = []
    for _ in range(2):
        model = copy.deepcopy(base)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1000, gamma=0.5)
        loader = TensorLoader(x, y, batch_size=batch_size, shuffle=True, seed=0)
        setups.append((model, optimizer, scheduler, loader))
    loss_fn = nn.CrossEntropyLoss()
    (m_a, o_a, s_a, l_a), (m_b, o_b, s_b, l_b) = setups

    def hand():
        hand_written_epoch(m_a, l_a, o_a, s_a, loss_fn, device)

    def helper():
        train(m_b, l_b, optimizer=o_b, epochs=1, scheduler=s_b, loss_fn=loss_fn, device=device,
              progress=False, log_every=LOG_EVERY)

    return hand, helper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20)
    args = parser.parse_args()
    device = get_device()
    generator = torch.Generator().manual_seed(0)
    cases = [  # name, model, number of training images, batch size, goal
        ("MLP 784-256-128-10, batch 64", mlp, 12_800, 64, 1.03),
        ("small CNN (width 16), batch 64", small_cnn, 1_280, 64, 1.01),
    ]
    print(f"device: {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    worst = 0.0
    for name, make_model, n, batch_size, goal in cases:
        x = torch.rand(n, 1, 28, 28, generator=generator).to(device)
        y = torch.randint(0, 10, (n,), generator=generator).to(device)
        hand, helper = arms(make_model, x, y, batch_size, device)
        result = compare(hand, helper, pairs=args.pairs, warmup=3, device=device)
        steps = n // batch_size
        verdict = "meets" if result.ratio <= goal else "MISSES"
        ms_per_step = statistics.median(result.a_s) / steps * 1e3
        print(f"{name}: {result} -> {result.ratio:.3f} {verdict} the goal <= {goal} "
              f"({ms_per_step:.3f} ms/step hand-written)")
        worst = max(worst, result.ratio)
    print(f"worst ratio train()/hand-written: {worst:.3f}")


if __name__ == "__main__":
    main()
