"""course_utils: the companion package of the "Train it faster" course.

Each helper is the cleaned-up version of code a notebook first writes from scratch.
Importing this package is cheap: torchvision, matplotlib, ipywidgets and tqdm are imported
only by the functions that need them (``plots`` imports matplotlib when it is imported).
The loop itself is ``from course_utils.train import train`` (re-exporting it here would hide
the ``course_utils.train`` module behind the function of the same name).
"""

from course_utils.bench import benchmark, compare, throughput
from course_utils.data import get_dataset, tensor_loader, train_val_split
from course_utils.hardware import describe_environment, get_device, seed_everything
from course_utils.models import mlp, small_cnn
from course_utils.train import History, evaluate, train_step

__version__ = "0.1.0"

__all__ = [
    "History", "benchmark", "compare", "describe_environment", "evaluate", "get_dataset",
    "get_device", "mlp", "seed_everything", "small_cnn", "tensor_loader", "throughput",
    "train_step", "train_val_split",
]
