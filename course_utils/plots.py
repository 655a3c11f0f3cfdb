"""Figures for the notebooks: training curves, image grids, LR schedules and the LR finder.

Every function returns its Axes. Figures are sized to be read at the book's column width and
in JupyterLab: at most ``MAX_WIDTH`` inches wide at ``DPI`` dots per inch (800 px), legends
and labels at 8 pt or more. Notebooks follow the same rule for their own figures:
``plt.subplots(1, 3, figsize=(8, 2.8), layout="constrained")`` with matplotlib's default dpi
(which is ``DPI``), never a lower ``figure.dpi``.

A leaf module: importing it imports matplotlib, so ``course_utils`` itself never does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from course_utils.lr_finder import LRFinderResult
from course_utils.surfaces import Surface
from course_utils.train import History

DPI = 100  # matplotlib's default; 8 in -> 800 px, about the book's column width
MAX_WIDTH = 8.0  # inches; wider figures are shrunk by the book and their text becomes unreadable
LEGEND_FONTSIZE = 9  # points: the smallest legend that stays readable at the column width


def moving_average(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing moving average; the first ``window - 1`` points average what exists so far.

    Non-finite values are kept out of the average (a diverged step does not erase the curve).
    """
    if not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be a positive int, got {window!r}")
    array = np.asarray(values, dtype=float)
    finite = np.isfinite(array)
    sums = np.cumsum(np.where(finite, array, 0.0))
    counts = np.cumsum(finite)
    sums[window:] = sums[window:] - sums[:-window]
    counts[window:] = counts[window:] - counts[:-window]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def plot_history(history: History, *, smooth: int = 50, axes: Sequence[Axes] | None = None,
                 label: str | None = None) -> Sequence[Axes]:
    """Per-step training loss (raw, faint, and its moving average) and per-epoch validation.

    Args:
        smooth: moving-average window in steps (1 shows the raw curve only).
        axes: two Axes to draw into (loss, accuracy); new ones are made if None.
        label: legend label, for overlaying several runs on the same axes.
    """
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(MAX_WIDTH, 3.2), dpi=DPI, layout="constrained")
    loss_ax, acc_ax = axes
    line = loss_ax.plot(history.step, history.train_loss, alpha=0.25, linewidth=0.8,
                        label=label if smooth <= 1 else None)[0]  # the only curve: it gets the label
    if smooth > 1:
        loss_ax.plot(history.step, moving_average(history.train_loss, smooth),
                     color=line.get_color(), label=label)
    loss_ax.set(xlabel="optimizer step", ylabel="training loss",
                title=f"training loss (moving average over {smooth} steps)" if smooth > 1
                else "training loss")
    if history.val_acc:
        epochs = history.epoch[:len(history.val_acc)]
        acc_ax.plot(epochs, [100 * a for a in history.val_acc], marker="o",
                    color=line.get_color(), label=label)
    acc_ax.set(xlabel="epoch", ylabel="validation accuracy (%)", title="validation accuracy")
    if label is not None:
        loss_ax.legend()
        if history.val_acc:  # an empty legend only draws a warning
            acc_ax.legend()
    return axes


def show_images(images: torch.Tensor, labels: Sequence[int] | torch.Tensor | None = None, *,
                classes: Sequence[str] | None = None, ncols: int = 8) -> np.ndarray:
    """A grid of images ``(N, C, H, W)``, each min-max scaled for display, titled by its label.

    Args:
        labels: one class index per image (shown by name if ``classes`` is given).

    Returns:
        The grid's Axes, shape ``(rows, ncols)``.
    """
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be (N, 1 or 3, H, W), got shape {tuple(images.shape)}")
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"got {len(images)} images but {len(labels)} labels")
    ncols = max(1, min(ncols, len(images)))
    nrows = -(-len(images) // ncols)
    pictures = images.detach().float().cpu()
    low = pictures.amin(dim=(1, 2, 3), keepdim=True)
    high = pictures.amax(dim=(1, 2, 3), keepdim=True)
    pictures = ((pictures - low) / (high - low).clamp_min(1e-12)).permute(0, 2, 3, 1).numpy()
    cell = min(1.2, MAX_WIDTH / ncols)  # inches per image
    _, axes = plt.subplots(nrows, ncols, figsize=(cell * ncols, (cell + 0.15) * nrows), squeeze=False,
                           dpi=DPI, layout="constrained")
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i >= len(pictures):
            continue
        picture = pictures[i]
        if picture.shape[2] == 1:
            ax.imshow(picture[:, :, 0], cmap="gray_r", vmin=0, vmax=1)
        else:
            ax.imshow(picture)
        if labels is not None:
            label = int(labels[i])
            ax.set_title(classes[label] if classes is not None else str(label), fontsize=9)
    return axes


def plot_schedule(schedule: Callable[[int], float], total_steps: int, *, ax: Axes | None = None,
                  label: str | None = None) -> Axes:
    """The learning rate ``schedule(step)`` for steps ``0 .. total_steps - 1``. Notebook 05."""
    if not isinstance(total_steps, int) or isinstance(total_steps, bool) or total_steps < 1:
        raise ValueError(f"total_steps must be a positive int, got {total_steps!r}")
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3), dpi=DPI, layout="constrained")
    ax.plot(range(total_steps), [schedule(step) for step in range(total_steps)], label=label)
    ax.set(xlabel="optimizer step", ylabel="learning rate")
    if label is not None:
        ax.legend()
    return ax


def plot_lr_finder(result: LRFinderResult, *, ax: Axes | None = None) -> Axes:
    """The LR range test: batch losses (faint), smoothed loss and the suggested LR. Notebook 05.

    The y-axis stops a little above the loss at the start, so the blow-up at the end does
    not squash the interesting part of the curve.
    """
    if not isinstance(result, LRFinderResult):
        raise TypeError(f"result must be an LRFinderResult, got {type(result).__name__}")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5), dpi=DPI, layout="constrained")
    lrs, losses = np.asarray(result.lrs), np.asarray(result.losses)
    smoothed = np.asarray(result.smoothed)
    ax.plot(lrs, losses, alpha=0.3, linewidth=0.8, label="batch loss")
    ax.plot(lrs, smoothed, label="smoothed loss")
    ax.axvline(result.suggested_lr, color="tab:red", linestyle="--",
               label=f"suggested lr = {result.suggested_lr:.2g}")
    finite = smoothed[np.isfinite(smoothed)]
    if finite.size:
        low, start = float(finite.min()), float(finite[0])
        ax.set_ylim(low - 0.1 * (start - low) - 1e-3, start + 0.3 * (start - low) + 1e-3)
    ax.set(xscale="log", xlabel="learning rate (log scale)", ylabel="training loss",
           title="LR range test" + (" (stopped: loss blew up)" if result.diverged else ""))
    ax.legend()
    return ax


def plot_trajectories(surface: Surface, paths: Mapping[str, torch.Tensor | np.ndarray], *,
                      ax: Axes | None = None, title: str | None = None,
                      resolution: int = 150) -> Axes:
    """Contours of a 2-D ``surface`` and the path each optimizer took across it (notebook 04).

    Args:
        paths: label -> points ``(k, 2)``, e.g. from :func:`course_utils.surfaces.trajectory`.
            Points outside the surface's window are clipped by the axes (a diverged run
            leaves the picture); every 10th point is marked, so spacing shows speed.
        resolution: grid points per axis for the contours.
    """
    if not isinstance(resolution, int) or resolution < 2:
        raise ValueError(f"resolution must be an int >= 2, got {resolution!r}")
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4), dpi=DPI, layout="constrained")
    xs = torch.linspace(*surface.xlim, resolution, dtype=torch.float64)
    ys = torch.linspace(*surface.ylim, resolution, dtype=torch.float64)
    grid_x, grid_y = torch.meshgrid(xs, ys, indexing="xy")
    values = surface(grid_x, grid_y).numpy()
    if surface.log_levels:
        levels = np.geomspace(max(float(values.min()), 1e-3), float(values.max()), 15)
    else:  # quantiles: as many bands near the minimum as on the steep walls
        levels = np.unique(np.quantile(values, np.linspace(0, 1, 15)))
    # filled bands without antialiasing keep the stored PNG small (contour lines triple it)
    ax.contourf(grid_x.numpy(), grid_y.numpy(), values, levels=levels, cmap="Greys", alpha=0.35,
                antialiased=False)
    for label, points in paths.items():
        points = np.asarray(points, dtype=float)
        if points.ndim != 2 or points.shape[1] != 2:
            raise ValueError(f"path {label!r} must have shape (k, 2), got {points.shape}")
        ax.plot(points[:, 0], points[:, 1], marker="o", markersize=2.5, markevery=10, linewidth=1.2,
                label=label)
    ax.plot(*surface.start, marker="o", color="black", markersize=5, linestyle="none")
    ax.plot(*surface.minimum, marker="*", color="black", markersize=10, linestyle="none")
    ax.set(xlim=surface.xlim, ylim=surface.ylim, xlabel="x", ylabel="y",
           title=title if title is not None else surface.name)
    if paths:
        ax.legend(fontsize=LEGEND_FONTSIZE, loc="best")
    return ax


def show_image_rows(rows: Sequence[torch.Tensor], labels: Sequence[str], *,
                    size: float = 0.8, figure: Figure | None = None) -> np.ndarray:
    """One row per batch ``(N, C, H, W)`` of images in [0, 1], each row labelled on its left.

    Unlike :func:`show_images`, pixels are clipped to [0, 1], not rescaled per image, so a
    brightness or contrast change stays visible. Taught in notebook 02.

    Args:
        size: height of a row in inches (images shrink if the figure would exceed ``MAX_WIDTH``).
        figure: an empty figure to draw into (the explorer's off-screen one); None: a new one.

    Returns:
        The grid's Axes, shape ``(len(rows), N)``.
    """
    if len(rows) == 0 or len(rows) != len(labels):
        raise ValueError(f"need one label per row and at least one row, got {len(rows)} rows "
                         f"and {len(labels)} labels")
    ncols = len(rows[0])
    for batch in rows:
        if batch.ndim != 4 or batch.shape[1] not in (1, 3) or len(batch) != ncols:
            raise ValueError(f"every row must be (N={ncols}, 1 or 3, H, W), got {tuple(batch.shape)}")
    aspect = rows[0].shape[3] / rows[0].shape[2]
    size = min(size, (MAX_WIDTH - 1.2) / (aspect * ncols))  # 1.2 in for the row labels
    figsize = (size * aspect * ncols + 1.2, size * len(rows))
    if figure is None:
        figure = plt.figure(figsize=figsize, dpi=DPI, layout="constrained")
    else:
        figure.set_size_inches(figsize)
    axes = figure.subplots(len(rows), ncols, squeeze=False)
    for ax_row, batch, label in zip(axes, rows, labels, strict=True):
        pictures = batch.detach().float().cpu().clamp(0, 1).permute(0, 2, 3, 1).numpy()
        for ax, picture in zip(ax_row, pictures, strict=True):
            ax.set_xticks([])
            ax.set_yticks([])
            # nearest: the real pixels, and a PNG a fraction of the size of a smoothed one
            if picture.shape[2] == 1:
                ax.imshow(picture[:, :, 0], cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
            else:
                ax.imshow(picture, interpolation="nearest")
        ax_row[0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    return axes


def show_augmentations(images: torch.Tensor, rows: Sequence[tuple[str, float]], *,
                       seed: int | None = None, figure: Figure | None = None) -> np.ndarray:
    """Each row: ``images`` ``(N, C, H, W)`` after ``make_augmentation(name, strength)`` per image.

    Args:
        rows: ``(name, strength)`` pairs, e.g. one augmentation at several strengths.
        seed: None draws from torch's global RNG; an int draws from a forked RNG seeded with
            it, leaving the caller's random state untouched (the explorer's "seed" slider).
        figure: an empty figure to draw into (see :func:`show_image_rows`).
    Taught in notebook 02.
    """
    from course_utils.augment import make_augmentation, per_sample

    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    size = (images.shape[2], images.shape[3])
    with torch.random.fork_rng(enabled=seed is not None, devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        batches = [per_sample(make_augmentation(name, strength, size=size), images)
                   for name, strength in rows]
    return show_image_rows(batches, [f"{name}\n{strength:g}" for name, strength in rows], figure=figure)


def plot_confusion_matrix(matrix: torch.Tensor, classes: Sequence[str] | None = None, *,
                          normalize: bool = True, ax: Axes | None = None,
                          title: str | None = None) -> Axes:
    """Draw a confusion matrix (rows = true class, columns = predicted); notebook 06.

    Args:
        matrix: counts ``(C, C)`` from :func:`course_utils.metrics.confusion_matrix`.
        classes: ``C`` class names for the ticks (None: indices).
        normalize: divide each row by its total, so the diagonal shows per-class recall.
    """
    if not isinstance(matrix, torch.Tensor) or matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError("matrix must be a square (C, C) tensor")
    size = matrix.shape[0]
    if classes is not None and len(classes) != size:
        raise ValueError(f"classes must name all {size} classes, got {len(classes)}")
    values = matrix.double()
    if normalize:
        values = values / values.sum(1, keepdim=True).clamp_min(1)
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 4), dpi=DPI, layout="constrained")
    ax.imshow(values.numpy(), cmap="Blues", vmin=0)
    for i in range(size):
        for j in range(size):
            text = f"{values[i, j]:.2f}" if normalize else f"{int(matrix[i, j])}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="white" if values[i, j] > 0.6 * values.max() else "black")
    labels = list(classes) if classes is not None else [str(i) for i in range(size)]
    ax.set_xticks(range(size), labels, rotation=90, fontsize=8)
    ax.set_yticks(range(size), labels, fontsize=8)
    ax.set(xlabel="predicted", ylabel="true", title=title or "")
    return ax
