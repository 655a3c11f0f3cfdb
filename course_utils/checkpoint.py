"""Saving and resuming training: everything needed to continue exactly where a run stopped.

A checkpoint holds the model, optimizer, scheduler and GradScaler states, the history so far,
every random-number generator's state, the loader's shuffling state and the run's settings
(optimizer class and hyperparameters, scheduler, ``amp``, ``grad_clip``). It is checked when
saved (only values that ``weights_only`` loading accepts), written atomically (a crash mid-write
leaves the previous checkpoint intact, and no temporary file behind) and read back with
``torch.load(..., weights_only=True)``: plain tensors and containers, no pickled code. Loading
checks that every state fits before it changes anything. Used by
:func:`course_utils.train.train` (``checkpoint=``); taught in notebook 00.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from course_utils.files import atomic_write

FORMAT = 1
# Exactly these types (not subclasses such as numpy.float64) load back with weights_only=True.
_PLAIN = (type(None), bool, int, float, complex, str, bytes, bytearray, torch.dtype, torch.device,
          torch.Size)
_CONTAINERS = (dict, OrderedDict, list, tuple, set)


def rng_state() -> dict[str, Any]:
    """The states of Python's, NumPy's and torch's generators, as checkpoint-safe values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 (global RNG)
    return {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss),
                  float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def check_storable(value: Any, where: str = "state") -> None:
    """Raise ValueError naming the first value in ``value`` that weights_only loading refuses.

    Allowed: tensors, None, bool, int, float, complex, str, bytes, torch dtypes, devices and
    sizes, and dicts, lists, tuples and sets of these. NumPy scalars, functions and other
    objects are not: convert them first (``float(x)``, ``array.tolist()``, ``torch.from_numpy``).
    """
    if isinstance(value, torch.Tensor) or type(value) in _PLAIN:
        return
    if type(value) not in _CONTAINERS:
        raise ValueError(f"cannot save {where}: a {type(value).__module__}.{type(value).__qualname__}"
                         f" ({value!r:.60}) would not load back with weights_only=True; store "
                         "tensors, numbers, strings, lists and dicts (float(x), array.tolist())")
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        if isinstance(value, dict):
            check_storable(key, f"{where} (key {key!r:.40})")
        check_storable(item, f"{where}[{key!r:.40}]")


def save_checkpoint(path: str | Path, **state: Any) -> None:
    """Write ``state`` (state dicts, history, epoch, ...) plus the RNG states, atomically.

    Raises:
        ValueError: ``path`` is a folder, or ``state`` holds a value that
            ``load_checkpoint`` (weights_only) would refuse; nothing is written then.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"checkpoint path {path} is a folder; give a file name such as {path / 'run.ckpt'}")
    record = {"format": FORMAT, "rng": rng_state(), **state}
    check_storable(record, "the checkpoint")
    atomic_write(path, lambda f: torch.save(record, f))


def read_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict:
    """Read a course checkpoint with ``weights_only=True`` without loading it into anything.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a course checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except PermissionError:
        raise
    except Exception as err:  # another kind of file: torch.load's error depends on its contents
        raise ValueError(f"{path} is not a course checkpoint (format {FORMAT}): torch.load("
                         f"weights_only=True) failed with {type(err).__name__}") from err
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise ValueError(f"{path} is not a course checkpoint (format {FORMAT})")
    return checkpoint


def _model_problems(state: Any, model: torch.nn.Module) -> list[str]:
    if not isinstance(state, dict):
        return [f"it is a {type(state).__name__}, not a state dict"]
    own = model.state_dict()
    problems = [f"missing {k}" for k in own if k not in state]
    problems += [f"unexpected {k}" for k in state if k not in own]
    problems += [f"{k} has shape {tuple(state[k].shape)}, the model's is {tuple(v.shape)}"
                 for k, v in own.items() if k in state and isinstance(state[k], torch.Tensor)
                 and state[k].shape != v.shape]
    return problems


def _optimizer_problems(state: Any, optimizer: torch.optim.Optimizer, saved_class: str | None) -> list[str]:
    name = type(optimizer).__name__
    if saved_class is not None and saved_class != name:
        return [f"it was saved from {saved_class}, this optimizer is {name}"]
    if not isinstance(state, dict) or not isinstance(state.get("param_groups"), list):
        return ["it is not an optimizer state dict"]
    groups = state["param_groups"]
    if len(groups) != len(optimizer.param_groups):
        return [f"{len(groups)} parameter group(s) saved, this optimizer has {len(optimizer.param_groups)}"]
    problems, params = [], {}
    for i, (saved, own) in enumerate(zip(groups, optimizer.param_groups, strict=True)):
        if len(saved["params"]) != len(own["params"]):
            problems.append(f"group {i} holds {len(saved['params'])} parameters, this one "
                            f"{len(own['params'])}")
            continue
        missing = sorted(set(optimizer.defaults) - set(saved))
        if missing:
            problems.append(f"group {i} lacks the settings {missing} this {name} needs (saved from "
                            f"{saved_class or 'another kind of optimizer'}?)")
        params.update(zip(saved["params"], own["params"], strict=True))
    for index, values in state.get("state", {}).items():
        param = params.get(index)
        for key, value in values.items() if param is not None else ():
            if isinstance(value, torch.Tensor) and value.ndim > 0 and value.shape != param.shape:
                problems.append(f"state {key} of parameter {index} has shape {tuple(value.shape)}, "
                                f"the parameter {tuple(param.shape)}")
    return problems


def load_checkpoint(path: str | Path, *, model: torch.nn.Module | None = None,
                    optimizer: torch.optim.Optimizer | None = None,
                    scheduler: Any = None, map_location: str | torch.device = "cpu",
                    checkpoint: dict | None = None) -> dict:
    """Read a checkpoint (``weights_only=True``), check it fits the objects given, then load it.

    Every state is checked before any is loaded, so a checkpoint that does not fit leaves the
    model, optimizer and scheduler exactly as they were. Returns the whole checkpoint
    dictionary. RNG states are *not* restored here; call :func:`set_rng_state` with
    ``checkpoint["rng"]`` to continue a run exactly. Pass ``checkpoint`` (what
    :func:`read_checkpoint` returned for ``path``) to avoid reading the file again.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a course checkpoint, or does not fit the objects given
            (naming what differs, e.g. both optimizer classes).
    """
    path = Path(path)
    checkpoint = read_checkpoint(path, map_location=map_location) if checkpoint is None else checkpoint
    saved_class = (checkpoint.get("settings") or {}).get("optimizer")
    targets = {"model": model, "optimizer": optimizer, "scheduler": scheduler}
    for name, target in targets.items():
        if target is None:
            continue
        if checkpoint.get(name) is None:
            raise ValueError(f"{path} holds no {name} state, but a {name} was given to load into")
        problems = (_model_problems(checkpoint[name], target) if name == "model" else
                    _optimizer_problems(checkpoint[name], target, saved_class) if name == "optimizer" else
                    [] if isinstance(checkpoint[name], dict) else ["it is not a state dict"])
        if problems:
            more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
            raise ValueError(f"the {name} state in {path} does not fit this {name}: "
                             + "; ".join(problems[:5]) + more)
    for name, target in targets.items():
        if target is not None:
            try:
                target.load_state_dict(checkpoint[name])
            except (RuntimeError, KeyError, ValueError) as err:  # after the checks: unexpected
                raise ValueError(f"the {name} state in {path} does not fit this {name}: {err}") from err
    return checkpoint


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value if type(value) in _PLAIN else repr(value)


def run_settings(optimizer: torch.optim.Optimizer, scheduler: Any, *, amp: str | None,
                 grad_clip: float | None) -> dict[str, Any]:
    """What a run was started with: optimizer class and hyperparameters, scheduler, amp, clipping.

    Taken before training starts (a scheduler changes the LR later), saved in every checkpoint
    and compared by :func:`settings_changes` when a run is resumed.
    """
    groups = [{k: _plain(v) for k, v in group.items() if k not in ("params", "param_names")}
              for group in optimizer.param_groups]
    return {"optimizer": type(optimizer).__name__, "param_groups": groups,
            "scheduler": None if scheduler is None else type(scheduler).__name__,
            "amp": amp, "grad_clip": None if grad_clip is None else float(grad_clip)}


def settings_changes(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Human-readable differences ``"lr: 0.1 saved, 0.001 now"`` between two :func:`run_settings`."""
    changes = [f"{key}: {saved.get(key)!r} saved, {current[key]!r} now"
               for key in ("optimizer", "scheduler", "amp", "grad_clip") if saved.get(key) != current[key]]
    if saved.get("optimizer") != current["optimizer"]:
        return changes  # different classes: their hyperparameters are not comparable
    old, new = saved.get("param_groups", []), current["param_groups"]
    if len(old) != len(new):
        return [*changes, f"parameter groups: {len(old)} saved, {len(new)} now"]
    for i, (a, b) in enumerate(zip(old, new, strict=True)):
        where = f"group {i} " if len(new) > 1 else ""
        changes += [f"{where}{k}: {a.get(k)!r} saved, {b.get(k)!r} now"
                    for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return changes


def loader_state(loader: Any, state: dict | None = None) -> dict | None:
    """Get (or, given ``state``, set) the shuffling state of a TensorLoader or DataLoader.

    None when the loader has no state of its own (a DataLoader without a generator follows
    torch's global RNG, which the checkpoint restores).
    """
    if hasattr(loader, "state_dict") and hasattr(loader, "load_state_dict"):
        return loader.state_dict() if state is None else loader.load_state_dict(state)
    generator = getattr(loader, "generator", None)
    if not isinstance(generator, torch.Generator):
        return None
    return {"generator": generator.get_state()} if state is None else generator.set_state(
        state["generator"])


def resume_run(path: str | Path, *, resume: bool | str | None, settings: dict[str, Any],
               model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
               scaler: torch.amp.GradScaler, loader: Any) -> tuple[dict, list[str]]:
    """Continue the run saved at ``path``: check it, then load every state.

    ``settings`` are this call's :func:`run_settings`. If they differ from the saved ones,
    ``resume=None`` refuses (ValueError naming the differences, nothing loaded); True or
    "force" loads the run and then puts the new settings back into the optimizer. An fp16
    GradScaler continues from its saved scale; the loader's shuffling state and every RNG are
    restored. Returns the checkpoint and the settings that changed (empty unless forced).
    """
    path = Path(path)
    state = read_checkpoint(path)
    changes = settings_changes(state["settings"], settings) if state.get("settings") else []
    if changes and resume is None:
        raise ValueError(f"{path} was saved by a run with other settings ({'; '.join(changes)}). "
                         "Use another checkpoint path (or delete this one) to start a new run, "
                         "resume=False to start over and overwrite it, or resume='force' to "
                         "continue it with the new settings")
    if not isinstance(state.get("history"), dict) or not isinstance(state.get("epoch"), int):
        raise ValueError(f"{path} is a checkpoint but not of a train() run (no history or epoch)")
    chosen = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
    load_checkpoint(path, model=model, optimizer=optimizer, scheduler=scheduler, checkpoint=state)
    if changes:  # resume=True/"force": the settings passed now replace the saved ones
        for group, own in zip(optimizer.param_groups, chosen, strict=True):
            group.update(own)
    if scaler.is_enabled() and state.get("scaler"):  # fp16 then and now: continue its scale
        scaler.load_state_dict(state["scaler"])
    if state.get("loader") is not None:
        loader_state(loader, state["loader"])
    set_rng_state(state["rng"])
    return state, changes
