import copy

import pytest
import torch
from torch import nn

from course_utils.regularization import (
    EarlyStopping,
    fraction_near_zero,
    l1_penalty,
    l2_penalty,
    penalized_loss,
)
from course_utils.train import History, evaluate, train


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


def test_l2_penalty_gradient_equals_sgd_weight_decay():
    model, x, y = tiny_model(), torch.randn(16, 4), torch.randint(0, 3, (16,))
    twin = copy.deepcopy(model)
    opt_loss = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt_wd = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    for _ in range(5):
        opt_loss.zero_grad()
        (nn.functional.cross_entropy(model(x), y) + l2_penalty(model.parameters(), 0.01)).backward()
        opt_loss.step()
        opt_wd.zero_grad()
        nn.functional.cross_entropy(twin(x), y).backward()
        opt_wd.step()
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(p, q)


def test_penalty_values():
    params = [torch.tensor([1.0, -2.0]), torch.tensor([[3.0]])]
    assert l2_penalty(params, 0.5).item() == pytest.approx(0.25 * 14)
    assert l1_penalty(params, 0.5).item() == pytest.approx(0.5 * 6)
    assert l2_penalty(iter(params), 0.0).item() == 0.0


def test_l1_gradient_is_sign():
    w = torch.tensor([-2.0, 0.5, 3.0], requires_grad=True)
    l1_penalty([w], 0.1).backward()
    torch.testing.assert_close(w.grad, 0.1 * torch.sign(w.detach()))


@pytest.mark.parametrize("fn", [l1_penalty, l2_penalty])
def test_penalty_bad_input(fn):
    with pytest.raises(ValueError, match=">= 0"):
        fn([torch.ones(2)], -1.0)
    with pytest.raises(ValueError, match=">= 0"):
        fn([torch.ones(2)], float("inf"))
    with pytest.raises(TypeError, match="iterable"):
        fn(torch.ones(2), 0.1)
    with pytest.raises(TypeError, match="iterable"):
        fn([], 0.1)


def test_fraction_near_zero():
    params = [torch.tensor([0.0, 1e-4, 0.5]), torch.tensor([-2e-4, 1.0])]
    assert fraction_near_zero(params) == pytest.approx(3 / 5)
    assert fraction_near_zero(params, threshold=1e-5) == pytest.approx(1 / 5)
    with pytest.raises(ValueError, match="threshold"):
        fraction_near_zero(params, threshold=0.0)


def test_penalized_loss_only_in_training_mode():
    model, x, y = tiny_model(), torch.randn(8, 4), torch.randint(0, 3, (8,))
    loss_fn = penalized_loss(model, l1=0.01, l2=0.1)
    plain = nn.functional.cross_entropy(model(x), y)
    expected = plain + l1_penalty(model.parameters(), 0.01) + l2_penalty(model.parameters(), 0.1)
    torch.testing.assert_close(loss_fn(model(x), y), expected)
    model.eval()
    torch.testing.assert_close(loss_fn(model(x), y), plain)
    with pytest.raises(ValueError, match="l1"):
        penalized_loss(model, l1=-1.0)
    with pytest.raises(TypeError, match="nn.Module"):
        penalized_loss("model")


def feed(hook, losses, model, field="val_loss"):
    history = History()
    for epoch, loss in enumerate(losses):
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(float(epoch + 1))
        getattr(history, field).append(loss)
        if hook(epoch, history):
            return epoch + 1
    return None


def test_early_stopping_stops_and_restores_best():
    model = nn.Linear(2, 1)
    stopper = EarlyStopping(model, patience=2)
    assert feed(stopper, [1.0, 0.5, 0.6, 0.7, 0.1], model) == 4
    assert stopper.best_epoch == 2 and stopper.best_value == 0.5 and stopper.stopped_epoch == 4
    assert float(model.weight[0, 0].detach()) == 2.0


def test_early_stopping_min_delta_and_accuracy():
    model = nn.Linear(2, 1)
    stopper = EarlyStopping(model, patience=2, min_delta=0.05)
    assert feed(stopper, [1.0, 0.98, 0.97, 0.5], model) == 3  # 0.98, 0.97 are not 0.05 better
    model = nn.Linear(2, 1)
    stopper = EarlyStopping(model, patience=1, monitor="val_acc", restore_best=False)
    assert feed(stopper, [0.5, 0.7, 0.6], model, field="val_acc") == 3
    assert float(model.weight[0, 0].detach()) == 3.0  # not restored
    stopper.restore()
    assert float(model.weight[0, 0].detach()) == 2.0


def test_early_stopping_never_stops_on_improvement_and_restore_after_budget():
    model = nn.Linear(2, 1)
    stopper = EarlyStopping(model, patience=1)
    assert feed(stopper, [0.9, 0.8, 0.7], model) is None
    assert stopper.stopped_epoch is None and stopper.best_epoch == 3


def test_early_stopping_inside_train():
    model, x, y = tiny_model(), torch.randn(32, 4), torch.randint(0, 3, (32,))
    loader = [(x[:16], y[:16]), (x[16:], y[16:])]
    val = [(torch.randn(16, 4), torch.randint(0, 3, (16,)))]
    stopper = EarlyStopping(model, patience=1)
    history = train(model, loader, optimizer=torch.optim.SGD(model.parameters(), lr=5.0), epochs=30,
                    val_loader=val, on_epoch_end=stopper, progress=False)
    assert stopper.stopped_epoch == len(history.val_loss) < 30
    assert evaluate(model, val).loss == pytest.approx(stopper.best_value)


def test_early_stopping_bad_input():
    model = nn.Linear(2, 1)
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(model, patience=0)
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(model, patience=2.5)
    with pytest.raises(ValueError, match="min_delta"):
        EarlyStopping(model, min_delta=-0.1)
    with pytest.raises(ValueError, match="val_loss"):
        EarlyStopping(model, monitor="train_loss")
    with pytest.raises(TypeError, match="nn.Module"):
        EarlyStopping("model")
    with pytest.raises(ValueError, match="val_loader"):
        EarlyStopping(model)(0, History())
    with pytest.raises(RuntimeError, match="nothing to restore"):
        EarlyStopping(model).restore()
