"""scripts/reproduce.py: a tiny --table=subp on the committed sample (table against the run files,
reuse, resume of an interrupted run, --write_docs), flag errors, and the pure helpers.

The tiny table is 4 training runs (SUBP L1 and the 1xN baseline, seeds 0 and 1, 2 epochs of 2
steps: 1xN needs a pre-training and a fine-tuning epoch); a second invocation on a copy of its
folder, with one run turned back into an interrupted one, must reuse three runs and resume the
fourth. Flag checks run in-process on a fresh absl `FlagValues`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from absl import flags

from tests.conftest import FASHION_MNIST_SAMPLE_DIR

REPOSITORY = Path(__file__).resolve().parents[2]
ENVIRONMENT = {
    **os.environ,
    "PYTHONPATH": str(REPOSITORY),
    "KERAS_BACKEND": "tensorflow",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "CUDA_VISIBLE_DEVICES": "",
}
TINY_TABLE = [
    "--table=subp",
    f"--data_dir={FASHION_MNIST_SAMPLE_DIR}",
    "--n=16",
    "--sparsity=0.5",
    "--methods=subp,1xn",
    "--criteria=l1",
    "--seeds=0,1",
    "--epochs=2",
    "--steps_per_epoch=2",
    "--eval_steps=1",
    "--batch_size=32",
    "--threads=1,2",
    "--latency_repeats=2",
    "--min_sample_ms=1",
]
DOC_BEFORE = "# Results\n\nIntro text.\n\n<!-- reproduce:subp:begin -->\nold table\n"
DOC_AFTER = "<!-- reproduce:subp:end -->\n\n## Next section\n\nKept as it is.\n"


def reproduce_module():
    from scripts import reproduce

    return reproduce


def run_reproduce(*arguments: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "scripts.reproduce", *arguments],
        cwd=REPOSITORY,
        env=ENVIRONMENT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def results_by_name(out_dir: Path) -> dict[str, dict]:
    return {
        path.parent.name: json.loads(path.read_text())
        for path in sorted((out_dir / "runs").glob("*/result.json"))
    }


@pytest.fixture(scope="module")
def tiny_table(tmp_path_factory):
    """The tiny table, run once: (out_dir, stdout)."""
    out_dir = tmp_path_factory.mktemp("reproduce") / "table"
    completed = run_reproduce(*TINY_TABLE, f"--out_dir={out_dir}")
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return out_dir, completed.stdout


@pytest.mark.slow
def test_table_matches_the_run_files(tiny_table):
    out_dir, stdout = tiny_table
    results = results_by_name(out_dir)
    assert len(results) == 4 and stdout.count("new, ") == 4
    # Two trainings at a time (the default --train_jobs=2), and every evaluation after all of
    # them, so that no latency is measured while a training shares the cores.
    lines = stdout.splitlines()
    trainings = [k for k, line in enumerate(lines) if line.endswith(")") and ": training (" in line]
    evaluations = [k for k, line in enumerate(lines) if "s evaluation; test accuracy" in line]
    assert len(trainings) == 4 and len(evaluations) == 4
    assert max(trainings) < min(evaluations)
    assert all(
        r["training_jobs"] == 2 and r["seconds"]["training_cpu_this_session"] > 0
        for r in results.values()
    )
    record = json.loads((out_dir / "subp.json").read_text())
    markdown = (out_dir / "subp.md").read_text()
    rows = {row["method"]: row for row in record["rows"]}
    assert set(rows) == {"subp", "1xn"}
    for method, row in rows.items():
        members = [r for r in results.values() if r["spec"]["method"] == method]
        accuracies = np.array([r["test_accuracy"] for r in members])
        assert sorted(r["spec"]["seed"] for r in members) == [0, 1]
        assert row["test_accuracy_mean"] == pytest.approx(accuracies.mean())
        assert row["test_accuracy_std"] == pytest.approx(accuracies.std(ddof=1))
        cell = f"{100 * accuracies.mean():.2f} ± {100 * accuracies.std(ddof=1):.2f}"
        line = next(line for line in markdown.splitlines() if line.startswith(f"| {row['label']}"))
        assert cell in line and "--seed={0,1}" in line and "scripts.train_subp" in line
        for threads in (1, 2):
            latencies = [r["latency_ms"]["delegate"][str(threads)] for r in members]
            assert f"{np.mean(latencies):.3f} ± {np.std(latencies, ddof=1):.3f}" in line
        # Every run's accuracy is the stripped Keras model's on the whole 1,000-image test split.
        for result in members:
            assert result["test_examples"] == 1000
            assert abs(result["tflite_delegate_test_accuracy"] - result["test_accuracy"]) <= 0.005
    # The sentence against the baseline, recomputed.
    difference = 100 * (rows["subp"]["test_accuracy_mean"] - rows["1xn"]["test_accuracy_mean"])
    sentence = next(line for line in markdown.splitlines() if line.startswith("- 1x16, 50 %"))
    assert f"by {abs(difference):.2f} points" in sentence
    verb = "beats" if difference > 0 else ("ties" if difference == 0 else "loses to")
    assert f"SUBP L1 {verb} the 1xN baseline" in sentence
    spread = 100 * max(rows["subp"]["test_accuracy_std"], rows["1xn"]["test_accuracy_std"])
    assert ("within one standard deviation" in sentence) == (abs(difference) <= spread)


@pytest.mark.slow
def test_balance_ratio_is_the_saved_models(tiny_table):
    """Balance from the stripped kernels in numpy: max / mean kept 1x16 blocks per group."""
    import keras

    out_dir, _ = tiny_table
    for name, result in results_by_name(out_dir).items():
        model = keras.saving.load_model(out_dir / "runs" / name / "train" / "final" / "model.keras")
        ratios = []
        for layer in ("stage2_block1_conv", "stage3_block1_conv"):
            kernel = model.get_layer(layer).get_weights()[0]  # (3, 3, Cin, Cout)
            cin, cout = kernel.shape[2], kernel.shape[3]
            kept = (np.abs(kernel).reshape(9, cin, cout // 16, 16).sum(axis=(0, 3)) > 0).sum(0)
            ratios.append(kept.max() / kept.mean())
        assert result["balance_ratio"] == pytest.approx(max(ratios))
        if result["spec"]["method"] == "subp":
            assert max(ratios) == 1.0


@pytest.mark.slow
def test_second_invocation_reuses_resumes_and_writes_only_the_marked_section(tiny_table, tmp_path):
    source, _ = tiny_table
    out_dir = tmp_path / "copy"
    shutil.copytree(source, out_dir)
    names = sorted(results_by_name(out_dir))
    # Turn one run back into an interrupted one: epoch 1's checkpoint, no final model, no result.
    interrupted = next(name for name in names if name.startswith("subp_"))
    run_dir = out_dir / "runs" / interrupted
    (run_dir / "result.json").unlink()
    (run_dir / "model.tflite").unlink()
    shutil.rmtree(run_dir / "train" / "final")
    (run_dir / "train" / "checkpoints" / "epoch_0002.keras").unlink()
    state_path = run_dir / "train" / "state.json"
    state = json.loads(state_path.read_text())
    state.update(
        finished=False,
        epochs_done=1,
        checkpoint="checkpoints/epoch_0001.keras",
        history=state["history"][:1],
    )
    state_path.write_text(json.dumps(state))
    kept = {
        name: (out_dir / "runs" / name / "result.json").stat().st_mtime_ns
        for name in names
        if name != interrupted
    }
    docs = tmp_path / "RESULTS.md"
    docs.write_text(DOC_BEFORE + DOC_AFTER)

    completed = run_reproduce(
        *TINY_TABLE, f"--out_dir={out_dir}", "--write_docs", f"--docs_file={docs}"
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert completed.stdout.count(": reused ") == 3
    assert re.search(rf"{re.escape(interrupted.rsplit('_', 1)[0])}: resumed, ", completed.stdout)
    for name, mtime in kept.items():  # not retrained, not rewritten
        assert (out_dir / "runs" / name / "result.json").stat().st_mtime_ns == mtime
    log = (run_dir / "train" / "train.log").read_text()
    assert "resumed from checkpoints/epoch_0001.keras" in log
    state = json.loads(state_path.read_text())
    assert state["finished"] and [row["epoch"] for row in state["history"]] == [1, 2]
    assert json.loads((run_dir / "result.json").read_text())["training"] == "resumed"

    text = docs.read_text()
    assert text.startswith(DOC_BEFORE.replace("old table\n", "")) and text.endswith(DOC_AFTER)
    section = text[len(DOC_BEFORE) - len("old table\n") : -len(DOC_AFTER)]
    assert "old table" not in section
    assert section.strip() == (out_dir / "subp.md").read_text().split("\n", 2)[2].strip()


# ---------------------------------------------------------------------------------------------
# Flag errors: one line naming the flag, exit status 2, nothing written


@pytest.mark.parametrize(
    ("arguments", "flag"),
    [
        ([], "--table"),
        (["--table=speed"], "--table"),
        (["--table=subp", "--sparsity=1.5"], "--sparsity"),
        (["--table=subp", "--n=7"], "--n"),
        (["--table=subp", "--seeds=a,b"], "--seeds"),
        (["--table=subp", "--methods=subp,magic"], "--methods"),
        (["--table=subp", "--criteria=l3"], "--criteria"),
        (["--table=subp", "--epochs=1"], "--epochs"),
        (["--table=subp", "--train_jobs=3"], "--train_jobs"),
        (["--table=subp", "--dataset=cifar10"], "--dataset"),
        (["--table=subp", "--data_dir=/nonexistent/fashion"], "--data_dir"),
        (["--table=subp", "--write_docs", "--docs_file=/nonexistent.md"], "--docs_file"),
        (["--table=delegate", "--quick"], "--quick"),
    ],
)
def test_bad_flag_is_one_line_naming_it_and_writes_nothing(tmp_path, capsys, arguments, flag):
    module = reproduce_module()
    out_dir = tmp_path / "out"
    values = module.define_flags(flags.FlagValues())
    data = (
        []
        if any(a.startswith("--data_dir") for a in arguments)
        else [f"--data_dir={FASHION_MNIST_SAMPLE_DIR}"]
    )
    values(["reproduce", *arguments, *data, f"--out_dir={out_dir}"])
    with pytest.raises(SystemExit) as exit_info:
        module.run(values)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and error.startswith("reproduce: error: "), error
    assert flag in error, error
    assert not out_dir.exists()


def test_docs_file_without_markers_is_refused(tmp_path, capsys):
    module = reproduce_module()
    docs = tmp_path / "doc.md"
    docs.write_text("# no markers\n")
    values = module.define_flags(flags.FlagValues())
    values(["reproduce", "--table=subp", "--write_docs", f"--docs_file={docs}"])
    with pytest.raises(SystemExit):
        module.run(values)
    assert "<!-- reproduce:subp:begin -->" in capsys.readouterr().err
    assert docs.read_text() == "# no markers\n"


# ---------------------------------------------------------------------------------------------
# Helpers


def test_mean_std_is_numpys_sample_deviation():
    module = reproduce_module()
    values = [0.9012, 0.8975, 0.9101]
    mean, std = module.mean_std(values)
    assert mean == pytest.approx(np.mean(values)) and std == pytest.approx(np.std(values, ddof=1))
    assert module.mean_std([0.5]) == (0.5, None)


def test_run_names_differ_by_every_setting_and_are_stable():
    module = reproduce_module()
    base = dict(
        method="subp",
        n=16,
        sparsity=0.5,
        criterion="bpar",
        seed=0,
        model="vgg_small",
        dataset="fashion_mnist",
        epochs=4,
        batch_size=256,
        steps_per_epoch=0,
        eval_steps=0,
    )
    name = module.RunSpec(**base).name()
    assert name == module.RunSpec(**base).name() and name.startswith("subp_n16_s0.5_bpar_seed0_")
    changed = {"epochs": 5, "seed": 1, "criterion": "l1", "n": 4, "batch_size": 128}
    names = {module.RunSpec(**{**base, key: value}).name() for key, value in changed.items()}
    assert len(names) == len(changed) and name not in names


def test_replace_marked_section_keeps_everything_else():
    module = reproduce_module()
    text = "a\n<!-- reproduce:udfc:begin -->\nold\n<!-- reproduce:udfc:end -->\nb\n"
    assert module.replace_marked_section(text, "udfc", "new\n") == (
        "a\n<!-- reproduce:udfc:begin -->\nnew\n<!-- reproduce:udfc:end -->\nb\n"
    )


def test_program_tables_pick_their_sections():
    """udfc takes the UDFC sections of both dfcompress runs, dfmpc the DF-MPC and deployment
    ones; delegate keeps the model table and only the layer summary table."""
    module = reproduce_module()
    report = (
        "# dfcompress on Fashion-MNIST\n\nData: x.\n\n## VGG (vgg_small): Prune / Neuron Merging "
        "/ UDFC (FP32 accuracy 89.70 %)\n\nCommand: `c`\n\n| P-R |\n|---|\n| 30% |\n\n"
        "## DF-MPC: FP32 / direct MP2/6 / DF-MPC MP2/6\n\n| Net |\n|---|\n| VGG |\n\n"
        "## Deployment: sizes\n\n| Model |\n|---|\n| VGG FP32 |\n"
    )
    udfc = module.program_table_sections("udfc", {"vgg": report, "resnet": report})["udfc"]
    assert udfc.count("| 30% |") == 2 and "DF-MPC" not in udfc and "(vgg run)" in udfc
    dfmpc = module.program_table_sections("dfmpc", {"vgg": report, "resnet": report})["dfmpc"]
    assert dfmpc.count("| VGG |") == 2 and "| VGG FP32 |" in dfmpc and "| 30% |" not in dfmpc
    bench = (
        "# 1xN sparse delegate vs dense XNNPACK\n\nCommand: `b`\n\n## Models (224x224)\n\n"
        "| model |\n|---|\n| ResNet-18 |\n\nNo plot: no layer-level rows.\n\n## Single-conv layers (batch 1)\n\nEfficiency:\n\n"
        "| N | s |\n|---|---|\n| 16 | 0.5 |\n\n| conv | per layer |\n|---|---|\n| 1x1 | 2 |\n"
    )
    sections = module.program_table_sections(
        "delegate", {"model_level": bench, "layer_level": bench}
    )
    assert set(sections) == {"delegate-model", "delegate-layer"}
    assert "No plot" not in sections["delegate-model"]
    assert (
        "| ResNet-18 |" in sections["delegate-model"]
        and "Command: `b`" in sections["delegate-model"]
    )
    assert (
        "| 16 | 0.5 |" in sections["delegate-layer"]
        and "per layer" not in sections["delegate-layer"]
    )


def test_program_runs_name_a_folder_inside_the_repository_relative_to_it(tmp_path, monkeypatch):
    """--table=delegate: a run folder inside the repository appears relative to it in the
    commands (the programs run there), so a table's command reads the same on every clone; the
    second invocation reuses both runs, also one recorded with the older absolute form; a folder
    outside the repository stays absolute."""
    module = reproduce_module()
    repository = tmp_path / "repo"
    repository.mkdir()
    monkeypatch.setattr(module, "REPOSITORY", repository)
    report = "# 1xN\n\nCommand: `b`\n\n## Models (224x224)\n\n| model |\n|---|\n| R |\n"
    calls = []

    def fake_run_program(arguments, log_path, environment=None):
        calls.append(arguments)
        folder = Path(arguments[-1].split("=", 1)[1])
        folder = folder if folder.is_absolute() else repository / folder
        (folder / "delegate_benchmark.md").write_text(report)
        return 0.0

    monkeypatch.setattr(module, "run_program", fake_run_program)

    def table(out_dir: Path) -> dict:
        values = module.define_flags(flags.FlagValues())
        values(["reproduce", "--table=delegate", f"--out_dir={out_dir}"])
        return module.program_table(values, "delegate", None, lambda message: None)

    inside = repository / "results" / "d"
    commands = table(inside)["commands"]
    assert [call[-1] for call in calls] == [
        "--out_dir=results/d/runs/model_level",
        "--out_dir=results/d/runs/layer_level",
    ]
    assert all(str(repository) not in command for command in commands.values())
    # A run recorded before the relative form: still reused, nothing rerun.
    recorded = inside / "runs" / "model_level" / "reproduce_command.txt"
    recorded.write_text(
        commands["model_level"].replace(
            "--out_dir=results/d", f"--out_dir={repository / 'results' / 'd'}"
        )
    )
    table(inside)
    assert len(calls) == 2
    outside = tmp_path / "elsewhere"
    table(outside)
    assert calls[-1][-1] == f"--out_dir={outside.resolve() / 'runs' / 'layer_level'}"
