"""The verdict protocol: paired intervals, the three part verdicts, combining, records, ledger."""

import json
import math

import pytest
import torch

from course_utils.verdicts import (
    CLAIMS,
    HOLDS,
    INCONCLUSIVE,
    NOT_HERE,
    NOT_MEASURED,
    PARTLY,
    check,
    combine,
    effect,
    judge,
    ledger_rows,
    load_ledger,
    not_measured,
    paired,
    record_verdicts,
    show_verdicts,
    speedup,
    t_quantile,
)


def test_t_quantile_table_and_tail():
    assert t_quantile(1) == 12.706 and t_quantile(4) == 2.776 and t_quantile(30) == 2.042
    assert t_quantile(60) == pytest.approx(2.000, abs=1e-3)  # exact: 2.0003
    assert t_quantile(1000) == pytest.approx(1.962, abs=1e-3)
    with pytest.raises(ValueError):
        t_quantile(0)


def test_effect_interval_matches_hand_computation():
    ev = effect("x", [1.0, 2.0, 3.0])
    half = 4.303 * 1.0 / math.sqrt(3)
    assert ev.numbers["mean"] == 2.0
    assert ev.numbers["ci"] == pytest.approx([2.0 - half, 2.0 + half])
    assert ev.verdict == INCONCLUSIVE and "3 seeds, 3 positive" in ev.summary  # 3 seeds: wide


def test_three_part_verdicts():
    assert effect("clear", [2.0, 2.2, 1.9, 2.1, 2.0], min_effect=0.5).verdict == HOLDS
    assert effect("noise", [1.0, -1.2, 0.8, -0.5, 0.3]).verdict == INCONCLUSIVE
    assert effect("opposite", [-2.0, -2.2, -1.9]).verdict == NOT_HERE
    # significant but smaller than what matters, measured precisely -> does not hold
    assert effect("tiny", [0.10, 0.11, 0.09, 0.10, 0.10], min_effect=0.5).verdict == NOT_HERE
    # significant, mean below min_effect, but the interval reaches it -> inconclusive
    assert effect("maybe", [0.1, 0.9, 0.2, 0.8], min_effect=0.5).verdict == INCONCLUSIVE


def test_paired_signs_scale_and_direction():
    ev = paired("acc", [0.80, 0.81, 0.79], [0.82, 0.83, 0.81], scale=100, unit=" pp")
    assert ev.numbers["differences"] == pytest.approx([2.0, 2.0, 2.0])
    assert ev.verdict == HOLDS and ev.summary.startswith("+2.00 pp")
    loss = paired("loss", [1.0, 1.1, 1.2], [0.5, 0.6, 0.6], higher_is_better=False)
    assert loss.verdict == HOLDS and loss.numbers["mean"] > 0


@pytest.mark.parametrize("args, message", [
    (([1.0], [2.0]), "at least 2"),
    (([1.0, 2.0], [1.0]), "paired by seed"),
    (([1.0, float("nan")], [1.0, 2.0]), "non-finite"),
])
def test_paired_refuses_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        paired("x", *args)


def test_effect_refuses_negative_min_effect():
    with pytest.raises(ValueError, match="min_effect"):
        effect("x", [1.0, 2.0], min_effect=-1)


def test_speedup_uses_log_ratios():
    ev = speedup("compile", [2.0, 2.1, 1.9, 2.0], [1.0, 1.05, 0.95, 1.0])
    assert ev.verdict == HOLDS and ev.numbers["ratio"] == pytest.approx(2.0)
    same = speedup("nothing", [1.0, 1.1, 0.9, 1.0], [1.05, 1.0, 0.95, 1.02])
    assert same.verdict in (INCONCLUSIVE, NOT_HERE)
    with pytest.raises(ValueError):
        speedup("x", [1.0, 0.0], [1.0, 1.0])


def test_combine_is_one_rule():
    assert combine([HOLDS, HOLDS]) == HOLDS
    assert combine([HOLDS, NOT_HERE]) == PARTLY  # "the gap shrinks, the accuracy is unchanged"
    assert combine([HOLDS, INCONCLUSIVE]) == PARTLY
    assert combine([NOT_HERE, INCONCLUSIVE]) == INCONCLUSIVE
    assert combine([NOT_HERE, NOT_HERE]) == NOT_HERE
    with pytest.raises(ValueError):
        combine([])
    with pytest.raises(ValueError):
        combine([PARTLY])


def test_not_measured_parts_never_count_as_holding():
    gpu = not_measured("speed-up on 2 GPUs", "needs 2+ GPUs")
    assert gpu.verdict == NOT_MEASURED and gpu.summary == "needs 2+ GPUs"
    assert combine([HOLDS, NOT_MEASURED]) == PARTLY
    assert combine([NOT_HERE, NOT_MEASURED]) == NOT_HERE
    assert combine([INCONCLUSIVE, NOT_MEASURED]) == INCONCLUSIVE
    assert combine([NOT_MEASURED]) == NOT_MEASURED
    assert judge("C24", check("replicas", True, ""), gpu).verdict == PARTLY
    with pytest.raises(ValueError, match="reason"):
        not_measured("x", "")


def test_judge_and_check():
    claim = judge("C2", check("one batch == streaming", True, "max diff 1e-7"))
    assert claim.verdict == HOLDS and claim.statement == CLAIMS["C2"][0]
    assert judge("C2", check("x", False, "differs")).verdict == NOT_HERE
    with pytest.raises(ValueError, match="unknown claim"):
        judge("C99", check("x", True, ""))
    with pytest.raises(ValueError):
        judge("C1")
    with pytest.raises(TypeError):
        check("x", 1, "not a bool")


def test_table_shows_every_part_and_the_overall_verdict():
    claim = judge("C3", effect("gap shrinks", [2.0, 2.1, 1.9]), effect("acc rises", [0.5, -0.4, 0.1]))
    table = show_verdicts(claim)
    markdown = table._repr_markdown_()
    assert "gap shrinks" in markdown and "acc rises" in markdown and "**partly**" in markdown
    assert "C3" in repr(table) and "**" not in repr(table)


def test_records_and_ledger_roundtrip(tmp_path):
    c1 = judge("C1", effect("std - raw", [1.0, 1.2, 0.9]))
    path = record_verdicts("01_data_normalization", [c1], device=torch.device("cpu"),
                           data="data_dir /x/FashionMNIST/raw", scale=1.0, folder=tmp_path)
    assert path.name == "01_data_normalization--cpu.json"
    record = json.loads(path.read_text())
    assert record["claims"][0]["parts"][0]["numbers"]["differences"] == [1.0, 1.2, 0.9]
    assert record["device"] == "cpu" and record["date"] and record["hardware"]
    fallback = record_verdicts("01_data_normalization", [c1], device="cpu",
                               data="fallback: scikit-learn digits", scale=4.0, folder=tmp_path)
    assert fallback.name == "01_data_normalization--cpu-fallback.json"
    ledger = load_ledger(tmp_path)
    assert list(ledger["C1"]) == ["cpu"]  # the fallback record is left out
    rows = ledger_rows(ledger)
    assert len(rows) == len(CLAIMS) == 25
    assert rows[0]["cpu"] == HOLDS and rows[0]["gpu"] == "no GPU run recorded"
    assert rows[1]["cpu"] == "missing" and rows[1]["key_number"] == ""
    assert "cpu-fallback" in load_ledger(tmp_path, include_fallback=True)["C1"]


def test_ledger_names_a_damaged_record(tmp_path):
    (tmp_path / "verdicts").mkdir()
    (tmp_path / "verdicts" / "05_x--cpu.json").write_text("{not json")
    with pytest.raises(ValueError, match="05_x--cpu.json is damaged"):
        load_ledger(tmp_path)


def test_record_refuses_no_claims(tmp_path):
    with pytest.raises(ValueError):
        record_verdicts("x", [], device="cpu", data="d", scale=1.0, folder=tmp_path)


def test_a_notebooks_own_question_needs_a_statement():
    own = judge("S1", check("x", True, ""), statement="the tips compound")
    assert own.statement == "the tips compound" and own.verdict == HOLDS


def test_a_claim_recorded_twice_keeps_its_home_notebook(tmp_path):
    home = judge("C25", effect("home", [1.0, 1.1, 0.9]))
    other = judge("C25", effect("other", [-1.0, -1.1, -0.9]))
    for notebook, claim in (("07_regularization", home), ("10_tuning_procedure", other)):
        record_verdicts(notebook, [claim], device="cpu", data="d", scale=1.0, folder=tmp_path)
    assert load_ledger(tmp_path)["C25"]["cpu"]["notebook"] == "07_regularization"
