import torch

from course_utils.checks import check_early_stopping, check_l2_penalty
from course_utils.regularization import EarlyStopping, l2_penalty


def test_check_l2_penalty_accepts_reference_and_names_mistakes():
    assert check_l2_penalty(l2_penalty)

    def no_half(parameters, weight_decay):
        return weight_decay * sum(p.pow(2).sum() for p in parameters)

    def norm(parameters, weight_decay):
        return weight_decay / 2 * torch.sqrt(sum(p.pow(2).sum() for p in parameters))

    def absolute(parameters, weight_decay):
        return weight_decay / 2 * sum(p.abs().sum() for p in parameters)

    def twice_iterated(parameters, weight_decay):
        total = sum(p.pow(2).sum() for p in parameters)
        return weight_decay / 2 * (total + sum(p.pow(2).sum() for p in parameters))

    def todo(parameters, weight_decay):
        raise NotImplementedError

    assert "twice" in check_l2_penalty(no_half).message
    assert "norm" in check_l2_penalty(norm).message
    assert "L1" in check_l2_penalty(absolute).message
    assert "once" in check_l2_penalty(twice_iterated).message
    result = check_l2_penalty(todo)
    assert not result and "not implemented" in result.message
    assert "number" in check_l2_penalty(lambda parameters, weight_decay: "x").message


def test_check_early_stopping():
    assert check_early_stopping(lambda model, patience: EarlyStopping(model, patience=patience))

    def never(model, patience):
        return lambda epoch, history: False

    def no_restore(model, patience):
        return EarlyStopping(model, patience=patience, restore_best=False)

    def off_by_one(model, patience):
        return EarlyStopping(model, patience=patience + 1)

    def shallow(model, patience):
        best = {"loss": float("inf"), "epoch": 0, "state": None}

        def hook(epoch, history):
            if history.val_loss[-1] < best["loss"]:
                best.update(loss=history.val_loss[-1], epoch=epoch, state=model.state_dict())
            elif epoch - best["epoch"] >= patience:
                model.load_state_dict(best["state"])  # no copy: the "best" state is the current one
                return True
            return False

        return hook

    def todo(model, patience):
        raise NotImplementedError

    assert "never stopped" in check_early_stopping(never).message
    assert "best epoch" in check_early_stopping(no_restore).message
    assert "should stop after epoch 5" in check_early_stopping(off_by_one).message
    assert "deep copy" in check_early_stopping(shallow).message
    result = check_early_stopping(todo)
    assert not result and result.message.endswith("not implemented yet.")
