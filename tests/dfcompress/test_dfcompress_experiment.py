"""scripts/dfcompress_experiment.py --quick: every table is written, and its rows agree with the
JSON results they come from."""

import json
import re

import pytest

from tests.dfcompress.script_runner import run_script

pytestmark = pytest.mark.slow


def test_quick_run_writes_every_table(tmp_path):
    output = tmp_path / "out"
    result = run_script(
        "scripts.dfcompress_experiment",
        "--quick",
        "--models=vgg",
        "--latency_repeats=3",
        f"--output_dir={output}",
        cwd=tmp_path,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    text = (output / "results.md").read_text()
    results = json.loads((output / "results.json").read_text())
    (model,) = results["models"].values()
    (row,) = model["udfc_table"]["rows"]
    assert "committed" in results["data"].lower() or "sample" in results["data"].lower()
    header = next(line for line in text.splitlines() if line.startswith("| P-R |"))
    assert header.count("|") == 10  # nine columns, UDFC's two objectives and its 32-bit run
    table_row = next(line for line in text.splitlines() if line.startswith("| 30% |"))
    cells = [cell.strip() for cell in table_row.split("|")[1:-1]]
    for index, key in enumerate(("prune", "nm", "udfc", "udfc_bn", "udfc_fp32"), start=1):
        assert cells[index] == f"{row[f'{key}_l2']:.2f} / {row[f'{key}_l1']:.2f}"
        assert all(0 <= row[f"{key}_{c}"] <= 100 for c in ("l1", "l2"))
    assert re.search(r"## DF-MPC: FP32 / direct MP2/6 / DF-MPC MP2/6", text)
    assert "| float32 |" in text and "| int8 |" in text
