"""scripts/udfc_objective_study.py: flag validation, and a one-model run on the committed sample."""

import re

import pytest

from tests.dfcompress.script_runner import run_script


def _run(*arguments: str, cwd):
    return run_script("scripts.udfc_objective_study", *arguments, cwd=cwd, timeout=600)


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--models=alexnet", r"--models.*must be a non-empty subset"),
        ("--seeds=one", r"--seeds.*integers"),
        ("--ratios=0.3,1.0", r"--ratios.*in \(0, 1\)"),
        ("--weight_bits=1", r"--weight_bits.*0 \(pruning only\) or 2..16"),
        ("--epochs=0", r"--epochs"),
    ],
)
def test_bad_flag_is_named(tmp_path, flag, message):
    result = _run(flag, cwd=tmp_path)
    assert result.returncode != 0
    assert re.search(message, result.stderr), result.stderr[-1000:]


def test_missing_data_dir_is_named(tmp_path):
    result = _run(f"--data_dir={tmp_path / 'none'}", "--seeds=0", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: --data_dir:")


@pytest.mark.slow
def test_one_model_table_and_summary_agree(tmp_path):
    output = tmp_path / "study.md"
    arguments = ("--models=vgg", "--seeds=0", "--ratios=0.3,0.5", "--epochs=1")
    result = _run(*arguments, f"--output={output}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    text = output.read_text()
    assert text in result.stdout
    rows = [line for line in text.splitlines() if line.startswith("| vgg |")]
    assert len(rows) == 2
    values = [[float(cell) for cell in re.findall(r"\d+\.\d", row)] for row in rows]
    for fp32, prune, nm, paper, default in values:
        assert 0 <= min(prune, nm, paper, default) and max(fp32, prune, nm, paper, default) <= 100
    # The summary counts what the table shows.
    above = sum(default > nm for _, _, nm, _, default in values)
    assert f"UDFC, default objective: above Neuron Merging in {above} of 2 rows" in text
    above_paper = sum(paper > nm for _, _, nm, paper, _ in values)
    assert f"UDFC, paper objective: above Neuron Merging in {above_paper} of 2 rows" in text
    # An existing output is never replaced.
    again = _run(*arguments, f"--output={output}", cwd=tmp_path)
    assert again.returncode != 0 and "--output" in again.stderr
    assert output.read_text() == text
