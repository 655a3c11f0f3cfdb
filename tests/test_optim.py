"""Oracle tests: the from-scratch optimizers in course_utils.optim against torch.optim."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from course_utils import optim

STEPS = 6

# (ours, torch's, shared keyword arguments)
CASES = {
    "sgd": (optim.SGD, torch.optim.SGD, {"lr": 0.1}),
    "sgd_wd": (optim.SGD, torch.optim.SGD, {"lr": 0.1, "weight_decay": 0.01}),
    "momentum": (optim.SGD, torch.optim.SGD, {"lr": 0.05, "momentum": 0.9}),
    "momentum_wd": (optim.SGD, torch.optim.SGD, {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.1}),
    "nesterov": (optim.SGD, torch.optim.SGD, {"lr": 0.05, "momentum": 0.8, "nesterov": True}),
    "nesterov_wd": (optim.SGD, torch.optim.SGD,
                    {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.05}),
    "adagrad": (optim.Adagrad, torch.optim.Adagrad, {"lr": 0.1}),
    "adagrad_wd": (optim.Adagrad, torch.optim.Adagrad, {"lr": 0.1, "weight_decay": 0.1, "eps": 1e-6}),
    "rmsprop": (optim.RMSprop, torch.optim.RMSprop, {"lr": 0.01}),
    "rmsprop_alpha": (optim.RMSprop, torch.optim.RMSprop, {"lr": 0.01, "alpha": 0.9}),
    "rmsprop_wd": (optim.RMSprop, torch.optim.RMSprop, {"lr": 0.01, "alpha": 0.999, "weight_decay": 0.1}),
    "adam": (optim.Adam, torch.optim.Adam, {"lr": 0.01}),
    "adam_betas": (optim.Adam, torch.optim.Adam, {"lr": 0.01, "betas": (0.5, 0.9), "eps": 1e-6}),
    "adam_wd": (optim.Adam, torch.optim.Adam, {"lr": 0.01, "weight_decay": 0.1}),
    "adamw": (optim.AdamW, torch.optim.AdamW, {"lr": 0.01}),
    "adamw_wd": (optim.AdamW, torch.optim.AdamW, {"lr": 0.01, "weight_decay": 0.3, "betas": (0.8, 0.99)}),
}


def twin_models() -> tuple[nn.Module, nn.Module]:
    generator = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator))
    twin = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3))
    twin.load_state_dict(model.state_dict())
    return model, twin


@pytest.mark.parametrize("case", CASES)
def test_matches_torch_step_by_step(case):
    ours_cls, torch_cls, kwargs = CASES[case]
    ours_model, torch_model = twin_models()
    ours = ours_cls(ours_model.parameters(), **kwargs)
    reference = torch_cls(torch_model.parameters(), **kwargs)
    generator = torch.Generator().manual_seed(1)
    for step in range(STEPS):
        x, y = torch.randn(8, 5, generator=generator), torch.randint(0, 3, (8,), generator=generator)
        for model, optimizer in ((ours_model, ours), (torch_model, reference)):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
        for p_ours, p_torch in zip(ours_model.parameters(), torch_model.parameters(), strict=True):
            torch.testing.assert_close(p_ours, p_torch, msg=lambda m, s=step: f"step {s}: {m}")


@pytest.mark.parametrize("case", ["momentum", "adagrad", "rmsprop", "adam"])
def test_state_uses_torch_keys(case):
    ours_cls, torch_cls, kwargs = CASES[case]
    p_ours, p_torch = torch.ones(3, requires_grad=True), torch.ones(3, requires_grad=True)
    ours, reference = ours_cls([p_ours], **kwargs), torch_cls([p_torch], **kwargs)
    for p, optimizer in ((p_ours, ours), (p_torch, reference)):
        p.grad = torch.tensor([1.0, -2.0, 0.5])
        optimizer.step()
    assert set(ours.state[p_ours]) <= set(reference.state[p_torch])
    for key, value in ours.state[p_ours].items():
        if isinstance(value, torch.Tensor):
            torch.testing.assert_close(value, reference.state[p_torch][key])


def test_parameters_without_grad_are_skipped_and_closure_is_called():
    used, unused = torch.ones(2, requires_grad=True), torch.ones(2, requires_grad=True)
    for cls in (optim.SGD, optim.Adagrad, optim.RMSprop, optim.Adam, optim.AdamW):
        optimizer = cls([used, unused], lr=0.1)

        def closure(optimizer=optimizer):
            optimizer.zero_grad()
            loss = (used**2).sum()
            loss.backward()
            return loss

        loss = optimizer.step(closure)
        assert loss is not None and torch.equal(unused, torch.ones(2))
        assert optimizer.step() is None


def test_adam_without_bias_correction_and_beta1_zero_is_rmsprop():
    a, b = torch.tensor([1.0, -2.0], requires_grad=True), torch.tensor([1.0, -2.0], requires_grad=True)
    adam = optim.Adam([a], lr=0.01, betas=(0.0, 0.99), bias_correction=False)
    rmsprop = torch.optim.RMSprop([b], lr=0.01, alpha=0.99)
    for g in ([0.3, -1.0], [2.0, 0.1], [-0.5, 0.5]):
        for p, optimizer in ((a, adam), (b, rmsprop)):
            p.grad = torch.tensor(g)
            optimizer.step()
        torch.testing.assert_close(a, b)


def test_adam_first_step_has_size_lr():
    p = torch.zeros(3, requires_grad=True)
    optimizer = optim.Adam([p], lr=0.01)
    p.grad = torch.tensor([1e-3, 1.0, -50.0])
    optimizer.step()
    torch.testing.assert_close(p.detach(), torch.tensor([-0.01, -0.01, 0.01]), rtol=1e-4, atol=1e-6)


def test_param_groups_with_their_own_lr():
    a, b = torch.ones(2, requires_grad=True), torch.ones(2, requires_grad=True)
    optimizer = optim.SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1)
    a.grad, b.grad = torch.ones(2), torch.ones(2)
    optimizer.step()
    torch.testing.assert_close(a.detach(), torch.full((2,), 0.9))
    torch.testing.assert_close(b.detach(), torch.zeros(2))


BAD = [
    (optim.SGD, {"lr": 0.0}, "lr must be in \\(0, inf\\)"),
    (optim.SGD, {"lr": -1.0}, "lr must be in"),
    (optim.SGD, {"lr": float("nan")}, "lr must be in"),
    (optim.SGD, {"lr": 0.1, "momentum": 1.0}, "momentum must be in \\[0, 1\\)"),
    (optim.SGD, {"lr": 0.1, "momentum": -0.1}, "momentum must be in"),
    (optim.SGD, {"lr": 0.1, "weight_decay": -1e-4}, "weight_decay must be in \\[0, inf\\)"),
    (optim.SGD, {"lr": 0.1, "nesterov": True}, "nesterov=True needs momentum in \\(0, 1\\)"),
    (optim.Adagrad, {"lr": -0.1}, "lr must be in"),
    (optim.Adagrad, {"eps": -1e-10}, "eps must be in \\[0, inf\\)"),
    (optim.RMSprop, {"alpha": 1.5}, "alpha must be in \\[0, 1\\)"),
    (optim.RMSprop, {"alpha": 1.0}, "alpha must be in"),
    (optim.Adam, {"betas": (0.9, 1.0)}, "betas\\[1\\] must be in \\[0, 1\\)"),
    (optim.Adam, {"betas": (-0.1, 0.999)}, "betas\\[0\\] must be in"),
    (optim.AdamW, {"weight_decay": -0.01}, "weight_decay must be in"),
    (optim.AdamW, {"lr": float("inf")}, "lr must be in"),
]


@pytest.mark.parametrize(("cls", "kwargs", "message"), BAD)
def test_bad_hyperparameters_name_the_allowed_range(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls([torch.zeros(2, requires_grad=True)], **kwargs)


@pytest.mark.parametrize("kwargs", [{"lr": "0.1"}, {"lr": True}, {"betas": 0.9}, {"betas": (0.9,)}])
def test_bad_types_raise_type_error(kwargs):
    with pytest.raises(TypeError):
        optim.Adam([torch.zeros(2, requires_grad=True)], **kwargs)


@pytest.mark.parametrize("name", optim.OPTIMIZER_NAMES)
def test_make_optimizer_builds_every_name(name):
    p = torch.zeros(2, requires_grad=True)
    optimizer = optim.make_optimizer(name, [p], lr=0.1, momentum=0.5, betas=(0.8, 0.99), alpha=0.9)
    group = optimizer.param_groups[0]
    assert group["lr"] == 0.1
    expected = {"SGD": ("momentum", 0.0), "momentum": ("momentum", 0.5), "Nesterov": ("nesterov", True),
                "Adagrad": ("eps", 1e-10), "RMSprop": ("alpha", 0.9), "Adam": ("betas", (0.8, 0.99)),
                "AdamW": ("weight_decay", 1e-2)}[name]
    assert group[expected[0]] == expected[1]


def test_make_optimizer_unknown_name():
    with pytest.raises(ValueError, match="choose one of"):
        optim.make_optimizer("LBFGS", [torch.zeros(1, requires_grad=True)], lr=0.1)
