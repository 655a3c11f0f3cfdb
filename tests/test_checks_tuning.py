import math

from course_utils.checks import check_log_uniform, check_smooth, check_stop_epoch
from course_utils.curves import smooth
from course_utils.tuning import LogUniform


def test_check_log_uniform_accepts_the_reference_and_names_mistakes():
    assert check_log_uniform(lambda rng, low, high: LogUniform(low, high).sample(rng))
    assert check_log_uniform(lambda rng, low, high: math.exp(rng.uniform(math.log(low), math.log(high))))
    uniform = check_log_uniform(lambda rng, low, high: rng.uniform(low, high))
    assert not uniform and "uniform draw" in uniform.message
    swapped = check_log_uniform(lambda rng, low, high: 10 ** rng.uniform(low, high))
    assert not swapped and "outside" in swapped.message
    assert "repeat" in check_log_uniform(lambda rng, low, high: 0.01).message
    half = check_log_uniform(lambda rng, low, high: 10 ** rng.uniform(-4, -2) if rng.random() < 0.5
                             else 10 ** rng.uniform(-4, 0))
    assert not half and "decades" in half.message

    def todo(rng, low, high):
        raise NotImplementedError("your code here")

    assert "not implemented" in check_log_uniform(todo).message
    assert "number" in check_log_uniform(lambda rng, low, high: "x").message


def test_check_smooth_accepts_the_reference_and_names_mistakes():
    assert check_smooth(smooth)

    def uncorrected(values, beta):
        out, average = [], 0.0
        for value in values:
            average = beta * average + (1 - beta) * value
            out.append(average)
        return out

    def swapped(values, beta):
        return smooth(values, 1 - beta)

    def nan_poisons(values, beta):
        out, average = [], 0.0
        for n, value in enumerate(values, start=1):
            average = beta * average + (1 - beta) * value
            out.append(average / (1 - beta ** n))
        return out

    assert "1 - beta ** n" in check_smooth(uncorrected).message
    assert "swapped" in check_smooth(swapped).message
    assert "NaN" in check_smooth(nan_poisons).message
    assert "one smoothed value" in check_smooth(lambda values, beta: values[:-1]).message
    assert "list of numbers" in check_smooth(lambda values, beta: None).message


def reference_stop(val_accs, patience):
    best, best_epoch = -1.0, 0
    for epoch, acc in enumerate(val_accs, start=1):
        if acc > best:
            best, best_epoch = acc, epoch
        elif epoch - best_epoch >= patience:
            return epoch, best_epoch
    return None, best_epoch


def test_check_stop_epoch_accepts_the_reference_and_names_mistakes():
    assert check_stop_epoch(reference_stop)

    def ties(val_accs, patience):
        best, best_epoch = -1.0, 0
        for epoch, acc in enumerate(val_accs, start=1):
            if acc >= best:
                best, best_epoch = acc, epoch
            elif epoch - best_epoch >= patience:
                return epoch, best_epoch
        return None, best_epoch

    def zero_based(val_accs, patience):
        stop, best = reference_stop(val_accs, patience)
        return (None if stop is None else stop - 1), best - 1

    def late(val_accs, patience):
        return reference_stop(val_accs, patience + 1)

    assert "not an improvement" in check_stop_epoch(ties).message
    assert "counted from 1" in check_stop_epoch(zero_based).message
    assert "one epoch late" in check_stop_epoch(late).message
    assert "return (stop_epoch, best_epoch)" in check_stop_epoch(lambda v, p: 3).message
