"""Optimizers written from their update equations, as small ``torch.optim.Optimizer`` subclasses.

Notebook 04 builds each one from scratch and checks it step by step against ``torch.optim``;
these are the reference copies. They keep their state under the same keys as ``torch.optim``
(``momentum_buffer``, ``sum``, ``square_avg``, ``exp_avg``, ``exp_avg_sq``) and follow the same
conventions (weight decay added to the gradient, the first momentum buffer equal to the
gradient, ``eps`` outside the square root), so they agree with PyTorch to float rounding.
For real training use ``torch.optim``: it is the same mathematics in fused, faster kernels.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim import Optimizer

Params = Iterable[torch.Tensor] | Iterable[dict[str, Any]]
Closure = Callable[[], torch.Tensor] | None

OPTIMIZER_NAMES = ("SGD", "momentum", "Nesterov", "Adagrad", "RMSprop", "Adam", "AdamW")


def _check(name: str, value: Any, low: float, high: float, *, low_open: bool = False,
           high_open: bool = True) -> None:
    """Raise unless ``value`` is a real number in the interval from ``low`` to ``high``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    above = value > low if low_open else value >= low
    below = value < high if high_open else value <= high
    if not (above and below and math.isfinite(value)):
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")


def _closure_loss(closure: Closure) -> torch.Tensor | None:
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum. Taught in notebook 04.

    ``g = grad + weight_decay * p``; with momentum ``b = momentum * b + g`` (``b = g`` at the
    first step) and the update uses ``b`` (or ``g + momentum * b`` for Nesterov);
    ``p = p - lr * update``.
    """

    def __init__(self, params: Params, lr: float = 1e-3, momentum: float = 0.0, *,
                 nesterov: bool = False, weight_decay: float = 0.0) -> None:
        _check("lr", lr, 0.0, math.inf, low_open=True)
        _check("momentum", momentum, 0.0, 1.0)
        _check("weight_decay", weight_decay, 0.0, math.inf)
        if nesterov and momentum == 0:
            raise ValueError("nesterov=True needs momentum in (0, 1)")
        super().__init__(params, {"lr": lr, "momentum": momentum, "nesterov": nesterov,
                                  "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Closure = None) -> torch.Tensor | None:
        loss = _closure_loss(closure)
        for group in self.param_groups:
            lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.add(p, alpha=wd) if wd else p.grad
                if mu:
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = g.clone()
                    else:
                        state["momentum_buffer"].mul_(mu).add_(g)
                    b = state["momentum_buffer"]
                    g = g.add(b, alpha=mu) if group["nesterov"] else b
                p.add_(g, alpha=-lr)
        return loss


class Adagrad(Optimizer):
    """Adagrad (Duchi et al., 2011): per-element steps scaled by all past squared gradients.

    ``s = s + g**2``; ``p = p - lr * g / (sqrt(s) + eps)``. Since ``s`` only grows, every
    element's effective learning rate ``lr / (sqrt(s) + eps)`` only shrinks. Notebook 04.
    """

    def __init__(self, params: Params, lr: float = 1e-2, *, eps: float = 1e-10,
                 weight_decay: float = 0.0) -> None:
        _check("lr", lr, 0.0, math.inf, low_open=True)
        _check("eps", eps, 0.0, math.inf)
        _check("weight_decay", weight_decay, 0.0, math.inf)
        super().__init__(params, {"lr": lr, "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Closure = None) -> torch.Tensor | None:
        loss = _closure_loss(closure)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.add(p, alpha=group["weight_decay"]) if group["weight_decay"] else p.grad
                state = self.state[p]
                if "sum" not in state:
                    state["sum"] = torch.zeros_like(p)
                state["sum"].addcmul_(g, g)
                p.addcdiv_(g, state["sum"].sqrt().add_(group["eps"]), value=-group["lr"])
        return loss


class RMSprop(Optimizer):
    """RMSProp (Hinton, 2012): Adagrad with an exponential moving average instead of a sum.

    ``s = alpha * s + (1 - alpha) * g**2``; ``p = p - lr * g / (sqrt(s) + eps)``. Notebook 04.
    """

    def __init__(self, params: Params, lr: float = 1e-2, alpha: float = 0.99, *,
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        _check("lr", lr, 0.0, math.inf, low_open=True)
        _check("alpha", alpha, 0.0, 1.0)
        _check("eps", eps, 0.0, math.inf)
        _check("weight_decay", weight_decay, 0.0, math.inf)
        super().__init__(params, {"lr": lr, "alpha": alpha, "eps": eps,
                                  "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Closure = None) -> torch.Tensor | None:
        loss = _closure_loss(closure)
        for group in self.param_groups:
            alpha = group["alpha"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.add(p, alpha=group["weight_decay"]) if group["weight_decay"] else p.grad
                state = self.state[p]
                if "square_avg" not in state:
                    state["square_avg"] = torch.zeros_like(p)
                state["square_avg"].mul_(alpha).addcmul_(g, g, value=1 - alpha)
                p.addcdiv_(g, state["square_avg"].sqrt().add_(group["eps"]), value=-group["lr"])
        return loss


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015): momentum on ``g`` and RMSProp on ``g**2``, bias-corrected.

    ``m = b1*m + (1-b1)*g``; ``v = b2*v + (1-b2)*g**2``; ``m_hat = m / (1 - b1**t)``;
    ``v_hat = v / (1 - b2**t)``; ``p = p - lr * m_hat / (sqrt(v_hat) + eps)``, with ``t`` the
    1-based step. ``weight_decay`` is added to the gradient (L2, as in ``torch.optim.Adam``).
    ``bias_correction=False`` drops the two divisions (not in PyTorch; it shows what they do).
    Notebook 04.
    """

    decoupled_weight_decay = False

    def __init__(self, params: Params, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), *, eps: float = 1e-8,
                 weight_decay: float = 0.0, bias_correction: bool = True) -> None:
        _check("lr", lr, 0.0, math.inf, low_open=True)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        _check("betas[0]", betas[0], 0.0, 1.0)
        _check("betas[1]", betas[1], 0.0, 1.0)
        _check("eps", eps, 0.0, math.inf)
        _check("weight_decay", weight_decay, 0.0, math.inf)
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps,
                                  "weight_decay": weight_decay, "bias_correction": bias_correction})

    @torch.no_grad()
    def step(self, closure: Closure = None) -> torch.Tensor | None:
        loss = _closure_loss(closure)
        for group in self.param_groups:
            lr, (beta1, beta2), wd = group["lr"], group["betas"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if wd and self.decoupled_weight_decay:
                    p.mul_(1 - lr * wd)  # AdamW: shrink the weights, outside the gradient
                elif wd:
                    g = g.add(p, alpha=wd)
                state = self.state[p]
                if "step" not in state:
                    state.update(step=0, exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
                state["step"] += 1
                m, v, t = state["exp_avg"], state["exp_avg_sq"], state["step"]
                m.mul_(beta1).add_(g, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                m_hat, v_hat = m, v
                if group["bias_correction"]:
                    m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
                p.addcdiv_(m_hat, v_hat.sqrt().add_(group["eps"]), value=-lr)
        return loss


class AdamW(Adam):
    """AdamW (Loshchilov and Hutter, 2019): Adam with decoupled weight decay.

    First ``p = p * (1 - lr * weight_decay)``, then the Adam step on the plain gradient.
    Notebook 04 (defined), notebook 07 (compared with Adam + L2).
    """

    decoupled_weight_decay = True

    def __init__(self, params: Params, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), *, eps: float = 1e-8,
                 weight_decay: float = 1e-2, bias_correction: bool = True) -> None:
        super().__init__(params, lr, betas, eps=eps, weight_decay=weight_decay,
                         bias_correction=bias_correction)


def make_optimizer(name: str, params: Params, *, lr: float, momentum: float = 0.9,
                   betas: tuple[float, float] = (0.9, 0.999), alpha: float = 0.99) -> Optimizer:
    """Build one of :data:`OPTIMIZER_NAMES` from this module by name (used by notebook 04's plots).

    Args:
        momentum: for ``"momentum"`` and ``"Nesterov"`` only.
        betas: for ``"Adam"`` and ``"AdamW"`` only.
        alpha: the decay of ``"RMSprop"`` only.

    Raises:
        ValueError: an unknown name, or a hyperparameter out of its range.
    """
    if name in ("SGD", "momentum", "Nesterov"):
        return SGD(params, lr, momentum=0.0 if name == "SGD" else momentum,
                   nesterov=name == "Nesterov")
    if name == "Adagrad":
        return Adagrad(params, lr)
    if name == "RMSprop":
        return RMSprop(params, lr, alpha)
    if name in ("Adam", "AdamW"):
        return (Adam if name == "Adam" else AdamW)(params, lr, betas)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {OPTIMIZER_NAMES}")
