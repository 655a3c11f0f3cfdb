"""Training throughput of an MLP fed three ways: hand-written index slicing (the reference),
the course's ``TensorLoader`` and ``DataLoader(TensorDataset(...))``.

Each arm trains the same MLP for one epoch over the same in-memory tensors; arms are
interleaved in A/B pairs against the hand-written slicing and the median ratio is reported
(throughput relative to slicing: 1.0 = as fast). Goal for ``TensorLoader``: >= 0.95 at batch
64 and 256.

Run: ``python benchmarks/loader_throughput.py [--pairs 15]``. The last line is the worst
TensorLoader ratio.
"""

from __future__ import annotations

import argparse
import copy

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from course_utils.bench import compare
from course_utils.data import TensorLoader
from course_utils.models import mlp


def epoch_over(batches, model, optimizer, loss_fn):
    for x, y in batches:
        loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def sliced(x, y, batch_size, generator):
    """The reference: shuffle an index once per epoch and slice the tensors with it."""
    order = torch.randperm(len(x), generator=generator)
    for start in range(0, len(x), batch_size):
        index = order[start:start + batch_size]
        yield x[index], y[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=15)
    parser.add_argument("--images", type=int, default=12_800)
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.rand(args.images, 1, 28, 28)
    y = torch.randint(0, 10, (args.images,))
    loss_fn = nn.CrossEntropyLoss()
    worst = float("inf")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, {args.images} images")
    for batch_size in (64, 256):
        base = mlp()
        models = [copy.deepcopy(base) for _ in range(3)]
        optimizers = [torch.optim.SGD(m.parameters(), lr=0.01) for m in models]
        generator = torch.Generator().manual_seed(0)
        tensor_loader = TensorLoader(x, y, batch_size=batch_size, shuffle=True, seed=0)
        data_loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True)

        def reference(m=models[0], o=optimizers[0], bs=batch_size, g=generator):
            epoch_over(sliced(x, y, bs, g), m, o, loss_fn)

        def course(m=models[1], o=optimizers[1], loader=tensor_loader):
            epoch_over(loader, m, o, loss_fn)

        def torch_default(m=models[2], o=optimizers[2], loader=data_loader):
            epoch_over(loader, m, o, loss_fn)

        for name, arm in (("TensorLoader", course), ("DataLoader(TensorDataset)", torch_default)):
            result = compare(reference, arm, pairs=args.pairs, warmup=2)
            relative = 1 / result.ratio  # throughput relative to slicing
            print(f"batch {batch_size:>3} {name:<26} {relative:6.1%} of slicing's throughput "
                  f"({args.images / min(result.b_s):,.0f} vs {args.images / min(result.a_s):,.0f} "
                  "images/s at best)")
            if name == "TensorLoader":
                worst = min(worst, relative)
    print(f"worst TensorLoader throughput relative to hand-written slicing: {worst:.3f}")


if __name__ == "__main__":
    main()
