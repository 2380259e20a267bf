"""Regenerate a results table of the docs with one command, each row carrying its command.

`--table=subp`: SUBP against Lin et al.'s 1xN baseline (dense pre-training, fixed layer-global
L1 mask, fine-tuning, same total epochs), tfmot's unstructured magnitude pruning
(`scripts/tfmot_baseline.py`) and the dense model, all `--model` (vgg_small) trained with the SUBP
paper's recipe (`scripts/train_subp.py`: cosine learning rate, label smoothing 0.1, coupled weight
decay 1e-4) on full Fashion-MNIST (`--dataset=mnist` for MNIST), at every N of `--n` and block
sparsity of `--sparsity`, SUBP with each criterion of `--criteria`, every seed of `--seeds`.
Per row: test accuracy (mean and sample standard deviation over the seeds), the largest
per-layer balance ratio (max / mean kept blocks per group of N output channels; 1.0 = every group
keeps as many blocks), batch-1 latency of the `.tflite` with the sparse delegate and with plain
XNNPACK at 1 and 2 threads (medians of interleaved samples, then the mean over seeds), what the
delegate claimed, and the training command. Under the table, one sentence per (N, sparsity)
says whether SUBP beats the 1xN baseline, by how much, and whether that is within one standard
deviation. The 1xN baseline ignores the criterion (its mask is always global L1), so it is one
row per (N, sparsity); dense is one row, tfmot one per sparsity.

`--table=delegate|udfc|dfmpc` run the programs that made those tables with the flags printed
above them in docs/RESULTS.md and docs/compression.md (`scripts/benchmark_delegate.py`,
`scripts/dfcompress_experiment.py`; the udfc and dfmpc tables come from the same two
dfcompress runs, so `--table=dfmpc --out_dir=<the udfc out_dir>` reuses them) and collect the
tables they print.

Runs and resumption: every training run (method, N, sparsity, criterion, seed and all other
settings) gets `<out_dir>/runs/<name>_<hash of its settings>/`: `spec.json`, `train/` (the
training program's own run directory: checkpoints after every epoch, log, final model and
metrics), `model.tflite` and, once evaluated, `result.json` (written atomically: temporary file,
then rename). A run whose `result.json` holds the same settings is reused and never touched; a
run with a checkpoint but no result resumes from that checkpoint (`--resume` of the training
program, same masks, schedule position and data order); a finished training without a result is
only evaluated. Every command-level run of the other tables is reused once its results file
exists. Nothing finished is deleted or overwritten. The tables go to `<out_dir>/<table>.md` and
`.json`; `--write_docs` replaces the text between `<!-- reproduce:<section>:begin -->` and
`<!-- reproduce:<section>:end -->` in the docs file (sections: subp, delegate-model,
delegate-layer in docs/RESULTS.md; udfc, dfmpc in docs/compression.md).

Time budget (`--table=subp`, vgg_small, full Fashion-MNIST: 234 steps of 256 images per epoch
plus the 10,000-image test pass). One epoch costs about 180 s of CPU time with two TensorFlow
threads (175-195 s in every run of the earlier --quick tables), i.e. T = 90-100 s of wall time on 2
idle cores. Two trainings side by side with one thread each (`--train_jobs=2`, the default) get
about 1.4x the images per second of one two-thread training (on this 2-core VM: 310-330 ms per
step of 128 images for each of two one-thread trainings, 220-235 ms for one two-thread training),
so a run costs about E x T / 1.4 of wall time, plus about 25 s alone for its evaluation (program
start, final model, conversion, the TFLite test pass, latency: run after the trainings, on idle
cores). The full table is 2 N x 2 sparsities x (SUBP BPAR + SUBP L1 + 1xN) + dense + tfmot at 2
sparsities = 15 configurations x 3 seeds = 45 runs of E epochs: about 2.2 hours at the default
E = 2 on the AVX2 VM these figures come from (56 minutes measured on an AVX-512 Zen 4 VM, where
TensorFlow trains this network about twice as fast; docs/RESULTS.md), so E = 2 is the most that
fits the 3-hour budget on the slower machine (`--epochs` raises it; every run is kept,
so a longer table can be built in several sittings). `--quick` (N=16, sparsity 0.5, SUBP BPAR,
1xN, dense, tfmot: 4 configurations x 3 seeds) trains E = 2 epochs of 78 steps (a third of the
training set each), about 12 x (2 x T / 3 / 1.4 + 25) s = 15-17 minutes on 2 idle cores (17 min 6 s
measured from nothing, docs/RESULTS.md): a check that every method runs and a first look, not a
table to draw conclusions from.

Examples:
  python -m scripts.reproduce --table=subp --quick --write_docs
  python -m scripts.reproduce --table=subp                  # the full table, 1-2.2 h
  python -m scripts.reproduce --table=subp --dataset=mnist --out_dir=results/reproduce/subp_mnist
  python -m scripts.reproduce --table=delegate --write_docs
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from absl import app, flags  # noqa: E402

REPOSITORY = Path(__file__).resolve().parent.parent
PROGRAM = "reproduce"
TABLES = ("subp", "delegate", "udfc", "dfmpc")
METHODS = ("subp", "1xn", "dense", "tfmot")
CRITERIA = ("bpar", "l1", "l2")
DATASETS = ("fashion_mnist", "mnist")
MODELS = ("vgg_small",)  # a chain of layers: tfmot's tf_keras twin needs one
DEFAULT_EPOCHS = 2  # the most that fits 3 hours: see the time budget in the docstring
QUICK_DEFAULTS: dict[str, Any] = {
    "n": ["16"],
    "sparsity": ["0.5"],
    "criteria": ["bpar"],
    "epochs": 2,  # the default too; kept so that --quick stays what it is if that changes
    "steps_per_epoch": 78,  # a third of full Fashion-MNIST per epoch: the 20-minute budget
}
DOCS = {
    "subp": REPOSITORY / "docs" / "RESULTS.md",
    "delegate": REPOSITORY / "docs" / "RESULTS.md",
    "udfc": REPOSITORY / "docs" / "compression.md",
    "dfmpc": REPOSITORY / "docs" / "compression.md",
}
METHOD_LABELS = {
    "subp": "SUBP",
    "1xn": "1xN baseline (Lin et al.)",
    "dense": "dense",
    "tfmot": "tfmot unstructured",
}

FLAGS = flags.FLAGS


def define_flags(flag_values: flags.FlagValues = FLAGS) -> flags.FlagValues:
    """Define the program's flags on `flag_values` (tests pass a fresh FlagValues)."""

    def define(kind, name, default, help_text):
        getattr(flags, f"DEFINE_{kind}")(name, default, help_text, flag_values=flag_values)

    define("string", "table", None, f"Which table: {', '.join(TABLES)} (required).")
    define(
        "bool",
        "quick",
        False,
        "subp: "
        + ", ".join(
            f"--{k}={','.join(v) if isinstance(v, list) else v}" for k, v in QUICK_DEFAULTS.items()
        )
        + " for flags not given explicitly (all methods, every seed), default out_dir "
        "results/reproduce/subp_quick.",
    )
    define(
        "string", "out_dir", None, "Where runs and tables go (default results/reproduce/<table>)."
    )
    define("string", "dataset", "fashion_mnist", f"subp: {', '.join(DATASETS)}.")
    define("string", "data_dir", None, "subp: directory of the IDX files (else the usual places).")
    define("list", "seeds", ["0", "1", "2"], "subp: seeds (at least 3 for a standard deviation).")
    define("list", "n", ["4", "16"], "subp: block lengths N.")
    define("list", "sparsity", ["0.5", "0.75"], "subp: block sparsities, in (0, 1).")
    define("list", "criteria", ["bpar", "l1"], f"subp: SUBP criteria from {CRITERIA}.")
    define("list", "methods", list(METHODS), f"subp: methods from {METHODS}.")
    define("integer", "epochs", DEFAULT_EPOCHS, "subp: training epochs of every run (>= 2).")
    define("string", "model", "vgg_small", f"subp: zoo model, one of {MODELS}.")
    define("integer", "batch_size", 256, "subp: training batch size.")
    define("integer", "steps_per_epoch", 0, "subp: training steps per epoch (0: one pass).")
    define("integer", "eval_steps", 0, "subp: test batches evaluated per epoch (0: all).")
    define(
        "integer",
        "train_jobs",
        2,
        "subp: trainings run at once (1 or 2); with 2, each child gets one TensorFlow thread, "
        "which on 2 cores trains about 1.4x as many images per second as one two-thread child. "
        "Evaluation and latency always run alone, after the trainings.",
    )
    define("list", "threads", ["1", "2"], "subp: thread counts of the latency columns.")
    define("integer", "latency_repeats", 11, "subp: interleaved latency samples per engine.")
    define("float", "min_sample_ms", 10.0, "subp: each latency sample lasts at least this long.")
    define(
        "float",
        "min_sparsity",
        None,
        "subp: the delegate's min_sparsity option (default: its per-N default, which leaves "
        "1x4 layers below 80 % block sparsity to XNNPACK).",
    )
    define(
        "bool",
        "only_finished",
        False,
        "subp: train nothing; build the table from the runs already finished and list the others "
        "as missing (to look at a long run while it is under way).",
    )
    define("bool", "write_docs", False, "Replace the table's marked section(s) in --docs_file.")
    define("string", "docs_file", None, "Docs file for --write_docs (default: the table's).")
    return flag_values


class FlagError(ValueError):
    """A bad flag value; the message names the flag and fits on one line."""


class RunFailed(RuntimeError):
    """A training or benchmark subprocess failed; the message says where its log is."""


# ---------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class RunSpec:
    """Everything that defines one training run; its hash names the run's directory.

    `n` is None for dense and tfmot (not block-structured); `criterion` only for SUBP (the 1xN
    baseline always uses global L1); `sparsity` is 0 for dense.
    """

    method: str
    n: int | None
    sparsity: float
    criterion: str | None
    seed: int
    model: str
    dataset: str
    epochs: int
    batch_size: int
    steps_per_epoch: int
    eval_steps: int

    @property
    def row_key(self) -> tuple:
        """The table row this run belongs to (everything but the seed)."""
        return (self.method, self.n, self.sparsity, self.criterion)

    def name(self) -> str:
        """Directory name: readable part plus a hash of every setting."""
        parts = [self.method]
        if self.n is not None:
            parts.append(f"n{self.n}")
        if self.method != "dense":
            parts.append(f"s{self.sparsity:g}")
        if self.criterion:
            parts.append(self.criterion)
        parts.append(f"seed{self.seed}")
        digest = hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()
        return "_".join(parts) + "_" + digest[:10]

    def training_arguments(self, data_dir: str | None) -> list[str]:
        """Flags of the training program (train_subp or tfmot_baseline) for a new run."""
        arguments = [
            f"--model={self.model}",
            f"--dataset={self.dataset}",
            f"--epochs={self.epochs}",
            f"--seed={self.seed}",
            f"--batch_size={self.batch_size}",
        ]
        if self.method != "tfmot":
            arguments.insert(0, f"--method={self.method}")
        if self.n is not None:
            arguments.append(f"--n={self.n}")
        if self.method != "dense":
            arguments.append(f"--sparsity={self.sparsity:g}")
        if self.criterion:
            arguments.append(f"--criterion={self.criterion}")
        if self.steps_per_epoch:
            arguments.append(f"--steps_per_epoch={self.steps_per_epoch}")
        if self.eval_steps:
            arguments.append(f"--eval_steps={self.eval_steps}")
        if data_dir:
            arguments.append(f"--data_dir={data_dir}")
        return arguments

    def program(self) -> str:
        """The training program's module."""
        return "scripts.tfmot_baseline" if self.method == "tfmot" else "scripts.train_subp"


@dataclass(frozen=True)
class SubpSettings:
    """Validated flags of --table=subp."""

    specs: tuple[RunSpec, ...]
    ns: tuple[int, ...]
    sparsities: tuple[float, ...]
    seeds: tuple[int, ...]
    threads: tuple[int, ...]
    latency_repeats: int
    min_sample_ms: float
    min_sparsity: float | None
    data_dir: str | None
    out_dir: Path
    only_finished: bool = False
    train_jobs: int = 1


def _integers(name: str, values: Sequence[str], minimum: int) -> tuple[int, ...]:
    try:
        numbers = tuple(dict.fromkeys(int(value) for value in values))
    except ValueError:
        raise FlagError(f"--{name}={','.join(values)} must list integers") from None
    if not numbers or any(number < minimum for number in numbers):
        raise FlagError(f"--{name}={','.join(values)} must list integers >= {minimum}")
    return numbers


def _subset(name: str, values: Sequence[str], allowed: Sequence[str]) -> tuple[str, ...]:
    unknown = [value for value in values if value not in allowed]
    if unknown or not values:
        raise FlagError(f"--{name}={','.join(values)}: choose from {', '.join(allowed)}")
    return tuple(dict.fromkeys(values))


def apply_quick_defaults(values: flags.FlagValues) -> None:
    """With --quick, give the QUICK_DEFAULTS flags that were not given explicitly their values."""
    if not values.quick:
        return
    for name, value in QUICK_DEFAULTS.items():
        if not values[name].present:
            values[name].value = value


def default_out_dir(values: flags.FlagValues) -> Path:
    """--out_dir, else results/reproduce/<table> (subp_quick with --quick)."""
    if values.out_dir:
        return Path(values.out_dir).expanduser()
    suffix = "_quick" if values.quick and values.table == "subp" else ""
    return REPOSITORY / "results" / "reproduce" / f"{values.table}{suffix}"


def check_table(values: flags.FlagValues) -> str:
    """The --table value; FlagError when it is missing or unknown."""
    if values.table not in TABLES:
        raise FlagError(f"--table={values.table} must be one of: {', '.join(TABLES)}")
    return values.table


def check_docs_flags(values: flags.FlagValues, table: str) -> Path | None:
    """The docs file --write_docs will edit (None without it); FlagError if it is missing."""
    if not values.write_docs:
        return None
    path = Path(values.docs_file).expanduser() if values.docs_file else DOCS[table]
    if not path.is_file():
        raise FlagError(f"--docs_file={path} does not exist")
    text = path.read_text()
    for section in doc_sections(table):
        for marker in markers(section):
            if text.count(marker) != 1:
                raise FlagError(f"--docs_file={path} must hold the marker {marker} exactly once")
    return path


def subp_settings(values: flags.FlagValues) -> SubpSettings:
    """Check every --table=subp flag (nothing is written); raises FlagError naming the flag."""
    if values.dataset not in DATASETS:
        raise FlagError(f"--dataset={values.dataset} must be one of: {', '.join(DATASETS)}")
    if values.model not in MODELS:
        raise FlagError(f"--model={values.model} must be one of: {', '.join(MODELS)}")
    methods = _subset("methods", values.methods, METHODS)
    criteria = _subset("criteria", values.criteria, CRITERIA)
    ns = _integers("n", values.n, 1)
    seeds = _integers("seeds", values.seeds, 0)
    threads = _integers("threads", values.threads, 1)
    try:
        sparsities = tuple(dict.fromkeys(float(value) for value in values.sparsity))
    except ValueError:
        raise FlagError(f"--sparsity={','.join(values.sparsity)} must list numbers") from None
    if not sparsities or not all(0 < s < 1 for s in sparsities):
        raise FlagError(f"--sparsity={','.join(values.sparsity)}: every value must be in (0, 1)")
    if values.epochs < 2:
        raise FlagError(
            f"--epochs={values.epochs} must be >= 2 (1xN needs a pre-training and a fine-tuning "
            "epoch; SUBP's mask must be final before the last epoch)"
        )
    for name in ("batch_size", "latency_repeats"):
        if values[name].value < 1:
            raise FlagError(f"--{name}={values[name].value} must be >= 1")
    for name in ("steps_per_epoch", "eval_steps"):
        if values[name].value < 0:
            raise FlagError(f"--{name}={values[name].value} must be >= 0")
    if values.train_jobs not in (1, 2):
        raise FlagError(f"--train_jobs={values.train_jobs} must be 1 or 2")
    if not values.min_sample_ms >= 0:
        raise FlagError(f"--min_sample_ms={values.min_sample_ms} must be >= 0")
    if values.min_sparsity is not None and not 0 <= values.min_sparsity <= 1:
        raise FlagError(f"--min_sparsity={values.min_sparsity} must be in [0, 1]")
    check_block_lengths(values.model, ns)
    check_data(values.dataset, values.data_dir)
    common = {
        "model": values.model,
        "dataset": values.dataset,
        "epochs": values.epochs,
        "batch_size": values.batch_size,
        "steps_per_epoch": values.steps_per_epoch,
        "eval_steps": values.eval_steps,
    }
    specs = []
    for seed in seeds:
        if "dense" in methods:
            specs.append(RunSpec("dense", None, 0.0, None, seed, **common))
        for n in ns:
            for sparsity in sparsities:
                if "subp" in methods:
                    for criterion in criteria:
                        specs.append(RunSpec("subp", n, sparsity, criterion, seed, **common))
                if "1xn" in methods:
                    specs.append(RunSpec("1xn", n, sparsity, None, seed, **common))
        if "tfmot" in methods:
            for sparsity in sparsities:
                specs.append(RunSpec("tfmot", None, sparsity, None, seed, **common))
    return SubpSettings(
        specs=tuple(specs),
        ns=ns,
        sparsities=sparsities,
        seeds=seeds,
        threads=threads,
        latency_repeats=values.latency_repeats,
        min_sample_ms=values.min_sample_ms,
        min_sparsity=values.min_sparsity,
        data_dir=values.data_dir,
        out_dir=default_out_dir(values),
        only_finished=values.only_finished,
        train_jobs=values.train_jobs,
    )


def check_block_lengths(model_name: str, ns: Sequence[int]) -> None:
    """FlagError unless every N divides the output channels of a prunable layer of the model."""
    import keras_subp
    from cnn_zoo import models as zoo

    model = getattr(zoo, model_name)()
    for n in ns:
        if "eligible" not in keras_subp.block_eligibility(model, n).values():
            raise FlagError(f"--n={n} divides the output channels of no prunable layer")


def check_data(dataset: str, data_dir: str | None) -> None:
    """FlagError (naming --data_dir) when the dataset cannot be found."""
    from cnn_zoo.datasets import DatasetNotFoundError, load_dataset

    # The loader falls back to other places when data_dir lacks the files; a directory given
    # explicitly must be the one used.
    if data_dir is not None and not Path(data_dir).expanduser().is_dir():
        raise FlagError(f"--data_dir={data_dir} is not a directory")
    try:
        data = load_dataset(dataset.replace("_", "-"), data_dir, allow_download=False)
    except (DatasetNotFoundError, OSError, ValueError) as error:
        raise FlagError(f"--data_dir={data_dir}: {str(error).splitlines()[0]}") from error
    if data_dir is not None and not data.source.startswith("data_dir argument"):
        raise FlagError(f"--data_dir={data_dir} does not hold {dataset} (found: {data.source})")


# ---------------------------------------------------------------------------------------------
# Files


def write_json_atomically(path: Path, payload: Any) -> None:
    """JSON to a temporary file in the same directory, then renamed over `path`."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    os.replace(temporary, path)


def write_text_atomically(path: Path, text: str) -> None:
    """Text to a temporary file in the same directory, then renamed over `path`."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def markers(section: str) -> tuple[str, str]:
    """The begin and end markers of a docs section."""
    return f"<!-- reproduce:{section}:begin -->", f"<!-- reproduce:{section}:end -->"


def doc_sections(table: str) -> tuple[str, ...]:
    """The marked docs sections a table owns."""
    return ("delegate-model", "delegate-layer") if table == "delegate" else (table,)


def replace_marked_section(text: str, section: str, content: str) -> str:
    """`text` with everything between the section's markers replaced by `content`."""
    begin, end = markers(section)
    start, stop = text.index(begin) + len(begin), text.index(end)
    if stop < start:
        raise ValueError(f"{end} comes before {begin}")
    return text[:start] + "\n" + content.strip("\n") + "\n" + text[stop:]


def write_docs(path: Path, sections: dict[str, str]) -> None:
    """Replace each marked section of the docs file `path` (atomically, all or nothing)."""
    text = path.read_text()
    for section, content in sections.items():
        text = replace_marked_section(text, section, content)
    write_text_atomically(path, text)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def subprocess_environment() -> dict[str, str]:
    """The environment of child programs: this repository importable, TF's C++ logs quiet."""
    path = os.environ.get("PYTHONPATH", "")
    return {
        **os.environ,
        "PYTHONPATH": str(REPOSITORY) + (os.pathsep + path if path else ""),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "KERAS_BACKEND": "tensorflow",
    }


def run_program(arguments: list[str], log_path: Path, environment: dict | None = None) -> float:
    """`python -m <arguments>` from the repository root, output appended to `log_path`, with
    `environment` added to the children's; returns the child's user + system CPU seconds."""
    with open(log_path, "a") as log:
        log.write(f"\n$ {shlex.join(['python', '-m', *arguments])}\n")
        log.flush()
        process = subprocess.Popen(
            [sys.executable, "-m", *arguments],
            cwd=REPOSITORY,
            env={**subprocess_environment(), **(environment or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        # wait4 rather than wait: this child's own CPU time, even with other children running.
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-1:]
        raise RunFailed(
            f"{arguments[0]} exited with {process.returncode} ({' '.join(tail)}); log: {log_path}"
        )
    return usage.ru_utime + usage.ru_stime


# ---------------------------------------------------------------------------------------------
# --table=subp: one run


def tfmot_available() -> str | None:
    """None when tfmot and tf_keras import in a child process, else the reason they do not.

    A child process, because importing tfmot switches `tf.keras` to tf_keras process-wide.
    """
    completed = subprocess.run(
        [sys.executable, "-c", "import tensorflow_model_optimization, tf_keras"],
        cwd=REPOSITORY,
        env=subprocess_environment(),
        capture_output=True,
        text=True,
    )
    if completed.returncode == 0:
        return None
    lines = completed.stderr.strip().splitlines()
    return lines[-1] if lines else "import failed"


def train_run(
    spec: RunSpec, run_dir: Path, data_dir: str | None, threads: int | None = None
) -> tuple[str, float]:
    """Train, resume or skip the training of one run; returns ("new", "resumed" or "trained",
    the training's CPU seconds). `threads` caps TensorFlow's thread pools of the child.

    The training program's own directory is run_dir/train. A finished one is left alone; one
    with a checkpoint is resumed; one stopped before its first checkpoint holds nothing worth
    keeping and is moved aside (never deleted) before a new start.
    """
    train_dir = run_dir / "train"
    state_path = train_dir / "state.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else None
    if state and state.get("finished") and (train_dir / "final" / "metrics.json").exists():
        return "trained", 0.0
    log_path = run_dir / "train_output.log"
    environment = (
        {"TF_NUM_INTRAOP_THREADS": str(threads), "TF_NUM_INTEROP_THREADS": str(threads)}
        if threads
        else None
    )
    if state and state.get("checkpoint"):
        arguments = [spec.program(), f"--out_dir={train_dir}", "--resume"]
        return "resumed", run_program(arguments, log_path, environment)
    if train_dir.exists():
        train_dir.rename(run_dir / f"train.abandoned.{int(time.time())}")
    arguments = [spec.program(), *spec.training_arguments(data_dir), f"--out_dir={train_dir}"]
    return "new", run_program(arguments, log_path, environment)


def block_facts(model, n: int | None) -> dict:
    """Block sparsity and balance of the model's sparse layers in blocks of N (None: no N)."""
    import warnings

    import keras_subp

    if n is None:
        return {"balance_ratio": None, "block_sparsity": None, "layers": []}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = keras_subp.sparsity_report(model, n=n)
    rows = [row for row in rows if row.block_sparsity > 0]
    layers = [
        {
            "name": row.name,
            "block_sparsity": row.block_sparsity,
            "balance_ratio": row.balance_ratio,
            "kept_blocks_min": row.kept_blocks_min,
            "kept_blocks_max": row.kept_blocks_max,
        }
        for row in rows
    ]
    return {
        "balance_ratio": max((row.balance_ratio for row in rows), default=None),
        "block_sparsity": (sum(row.block_sparsity for row in rows) / len(rows) if rows else None),
        "layers": layers,
    }


def keras_accuracy(model, images, labels) -> float:
    """Top-1 accuracy of the Keras model on (images (N, H, W, C) float32, labels (N,))."""
    import numpy as np

    logits = model.predict(images, batch_size=500, verbose=0)
    return float(np.mean(np.argmax(logits, axis=1) == labels))


def tflite_accuracy(path: Path, images, labels, threads: int, options: dict) -> float:
    """Top-1 accuracy of the .tflite on (images (N, H, W, C) float32, labels (N,)) with the
    delegate, in batches of 500."""
    import numpy as np

    import tflite_delegate

    interpreter = tflite_delegate.Interpreter(model_path=path, num_threads=threads, **options)
    index = interpreter.get_input_details()[0]["index"]
    output = interpreter.get_output_details()[0]["index"]
    correct = 0
    for start in range(0, len(images), 500):
        chunk = images[start : start + 500]
        interpreter.resize_tensor_input(index, chunk.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(index, chunk)
        interpreter.invoke()
        correct += int(
            np.sum(interpreter.get_tensor(output).argmax(1) == labels[start : start + 500])
        )
    return correct / len(images)


def measure_latency(path: Path, settings: SubpSettings, image) -> tuple[dict, dict]:
    """Batch-1 latency (ms, median of interleaved samples) of the .tflite with the delegate and
    with XNNPACK at every thread count, and what the delegate claimed (at the first count)."""
    import statistics

    from scripts import benchmark_delegate as bench

    interpreters = {}
    for threads in settings.threads:
        for engine in ("delegate", "xnnpack"):
            interpreter = bench.make_interpreter(engine, path, threads, 1, settings.min_sparsity)
            interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image)
            interpreters[(engine, threads)] = interpreter
    claims = bench.claim_facts(interpreters[("delegate", settings.threads[0])])
    samplers = {key: bench.interpreter_sampler(value) for key, value in interpreters.items()}
    samples, _ = bench.time_interleaved(
        samplers, settings.latency_repeats, warmup=2, min_sample_ms=settings.min_sample_ms
    )
    latency: dict[str, dict[str, float]] = {"delegate": {}, "xnnpack": {}}
    for (engine, threads), values in samples.items():
        latency[engine][str(threads)] = statistics.median(values) * 1e3
    return latency, claims


def evaluate_run(spec: RunSpec, run_dir: Path, settings: SubpSettings, data) -> dict:
    """Convert the run's final model, measure it, and return its result record."""
    import keras
    import numpy as np

    import tflite_delegate
    from cnn_zoo.datasets import to_model_inputs

    train_dir = run_dir / "train"
    metrics = json.loads((train_dir / "final" / "metrics.json").read_text())
    model = keras.saving.load_model(train_dir / "final" / "model.keras", compile=False)
    tflite_path = run_dir / "model.tflite"
    if not tflite_path.exists():
        tflite_delegate.convert(model, tflite_path)
    images = to_model_inputs(data.x_test)
    labels = data.y_test.astype(np.int64)
    options = {} if settings.min_sparsity is None else {"min_sparsity": settings.min_sparsity}
    latency, claims = measure_latency(tflite_path, settings, images[:1])
    blocks = block_facts(model, spec.n)
    weights_zero = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kernel = np.asarray(layer.get_weights()[0])
            weights_zero[layer.name] = float(np.mean(kernel == 0))
    return {
        "spec": asdict(spec),
        "name": spec.name(),
        "command": training_command(spec, settings.data_dir),
        "test_accuracy": keras_accuracy(model, images, labels),
        "training_log_test_accuracy": metrics["final_val_accuracy"],
        "tflite_delegate_test_accuracy": tflite_accuracy(
            tflite_path, images, labels, settings.threads[0], options
        ),
        "test_examples": len(labels),
        "data_source": metrics.get("data_source"),
        "balance_ratio": blocks["balance_ratio"],
        "block_sparsity": blocks["block_sparsity"],
        "block_layers": blocks["layers"],
        "conv_weight_zero_fraction": weights_zero,
        "latency_ms": latency,
        "claims": {
            "claimed": claims.get("claimed"),
            "conv2d_nodes": claims.get("conv_nodes"),
            "claimed_block_n": claims.get("claimed_block_n"),
            "not_claimed": claims.get("not_claimed"),
        },
        "latency_settings": {
            "repeats": settings.latency_repeats,
            "min_sample_ms": settings.min_sample_ms,
            "min_sparsity": settings.min_sparsity,
        },
        "load_average": load_average(),
        "created_utc": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }


def training_command(spec: RunSpec, data_dir: str | None) -> str:
    """The command line that trains this run."""
    return shlex.join(["python", "-m", spec.program(), *spec.training_arguments(data_dir)])


def finished_result(run_dir: Path, spec: RunSpec) -> dict | None:
    """The run's result.json when it exists and holds these settings; None when it does not
    exist; RunFailed when it holds other settings (then nothing is touched)."""
    path = run_dir / "result.json"
    if not path.exists():
        return None
    result = json.loads(path.read_text())
    if result.get("spec") != asdict(spec):
        raise RunFailed(f"{path} holds other settings than {spec.name()}; left untouched")
    return result


def run_subp_table(
    settings: SubpSettings, console
) -> tuple[list[dict], dict[str, str], int, list[str]]:
    """Run (or reuse) every run of the table; returns (results, row label -> reason skipped,
    number of runs reused, names of runs left out by --only_finished)."""
    from cnn_zoo.datasets import load_dataset

    data = None
    skipped: dict[str, str] = {}
    tfmot_missing = None
    if any(spec.method == "tfmot" for spec in settings.specs):
        tfmot_missing = tfmot_available()
    results = []
    reused = 0
    missing = []
    pending: list[tuple[str, RunSpec, Path]] = []
    total = len(settings.specs)
    for index, spec in enumerate(settings.specs, start=1):
        run_dir = settings.out_dir / "runs" / spec.name()
        label = f"[{index}/{total}] {spec.name().rsplit('_', 1)[0]}"
        result = finished_result(run_dir, spec)
        if result is not None:
            console(f"{label}: reused {run_dir / 'result.json'}")
            results.append(result)
            reused += 1
        elif settings.only_finished:
            missing.append(spec.name())
            console(f"{label}: not finished, left out (--only_finished)")
        elif spec.method == "tfmot" and tfmot_missing:
            skipped[row_label(spec.row_key)] = f"tfmot not installed ({tfmot_missing})"
            console(f"{label}: skipped, tfmot not installed")
        else:
            pending.append((label, spec, run_dir))
    outcomes = train_pending(pending, settings, console)
    # Evaluation (test accuracy, latency) only once no training shares the cores.
    failures = []
    for (label, spec, run_dir), outcome in zip(pending, outcomes, strict=True):
        if isinstance(outcome, RunFailed):
            failures.append(outcome)
            continue
        how, seconds, cpu_seconds = outcome
        if data is None:
            data = load_dataset(spec.dataset.replace("_", "-"), settings.data_dir, False)
        started = time.perf_counter()
        result = evaluate_run(spec, run_dir, settings, data)
        result["seconds"] = {
            "training_this_session": seconds,
            # CPU time does not grow with other jobs' load as wall time does: the budget's basis.
            "training_cpu_this_session": cpu_seconds,
            "evaluation": time.perf_counter() - started,
        }
        result["training"] = how
        result["training_jobs"] = settings.train_jobs
        write_json_atomically(run_dir / "result.json", result)
        results.append(result)
        latency = result["latency_ms"]["delegate"]
        console(
            f"{label}: {how}, {seconds:.0f} s training + {result['seconds']['evaluation']:.0f} s "
            f"evaluation; test accuracy {100 * result['test_accuracy']:.2f} %, delegate "
            + ", ".join(f"{t} thr {ms:.3f} ms" for t, ms in latency.items())
        )
    if failures:
        raise failures[0]
    return results, skipped, reused, missing


def train_pending(
    pending: list[tuple[str, RunSpec, Path]], settings: SubpSettings, console
) -> list:
    """Train the pending runs, --train_jobs at a time (one TensorFlow thread each when more
    than one); returns, in the order of `pending`, (how, wall seconds, CPU seconds) or the
    RunFailed of each. A failed run does not stop the others: what they trained is kept and
    evaluated."""
    from concurrent.futures import ThreadPoolExecutor

    threads = 1 if settings.train_jobs > 1 else None

    def train_one(item: tuple[str, RunSpec, Path]):
        label, spec, run_dir = item
        run_dir.mkdir(parents=True, exist_ok=True)
        spec_path = run_dir / "spec.json"
        if not spec_path.exists():
            write_json_atomically(spec_path, asdict(spec))
        console(f"{label}: training (load average {load_average()})")
        started = time.perf_counter()
        try:
            how, cpu_seconds = train_run(spec, run_dir, settings.data_dir, threads)
        except RunFailed as error:
            console(f"{label}: FAILED: {error}")
            return error
        return how, time.perf_counter() - started, cpu_seconds

    # The pool's threads only wait on the training processes.
    with ThreadPoolExecutor(max_workers=settings.train_jobs) as pool:
        return list(pool.map(train_one, pending))


# ---------------------------------------------------------------------------------------------
# --table=subp: the table


def row_label(key: tuple) -> str:
    """Readable name of a row key (method, n, sparsity, criterion)."""
    method, n, sparsity, criterion = key
    text = METHOD_LABELS[method]
    if criterion:
        text += f" {criterion.upper()}"
    if n is not None:
        text += f" 1x{n}"
    if method != "dense":
        text += f" {100 * sparsity:g} %"
    return text


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (ddof=1; None for one value)."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    variance = sum((value - mean) ** 2 for value in values) / (len(values) - 1)
    return mean, math.sqrt(variance)


def aggregate(results: list[dict], threads: Sequence[int], seeds: Sequence[int]) -> list[dict]:
    """One row per (method, N, sparsity, criterion): means and deviations over the seeds."""
    groups: dict[tuple, list[dict]] = {}
    for result in results:
        spec = result["spec"]
        key = (spec["method"], spec["n"], spec["sparsity"], spec["criterion"])
        groups.setdefault(key, []).append(result)
    rows = []
    for key, members in groups.items():
        members = sorted(members, key=lambda result: result["spec"]["seed"])
        accuracy, accuracy_std = mean_std([result["test_accuracy"] for result in members])
        balances = [result["balance_ratio"] for result in members]
        row = {
            "key": list(key),
            "label": row_label(key)
            + (
                f" (seeds {', '.join(str(r['spec']['seed']) for r in members)})"
                if len(members) < len(seeds)
                else ""
            ),
            "method": key[0],
            "n": key[1],
            "sparsity": key[2],
            "criterion": key[3],
            "seeds": [result["spec"]["seed"] for result in members],
            "test_accuracy_mean": accuracy,
            "test_accuracy_std": accuracy_std,
            "balance_ratio_mean": (
                mean_std(balances)[0] if all(b is not None for b in balances) else None
            ),
            "latency_ms": {},
            "claimed": sorted(
                {f"{r['claims']['claimed']}/{r['claims']['conv2d_nodes']}" for r in members}
            ),
            "command": members[0]["command"].replace(
                f"--seed={members[0]['spec']['seed']}",
                "--seed="
                + (
                    "{" + ",".join(str(r["spec"]["seed"]) for r in members) + "}"
                    if len(members) > 1
                    else str(members[0]["spec"]["seed"])
                ),
            ),
            "tflite_accuracy_difference_max": max(
                abs(r["tflite_delegate_test_accuracy"] - r["test_accuracy"]) for r in members
            ),
        }
        for engine in ("delegate", "xnnpack"):
            for count in threads:
                values = [result["latency_ms"][engine][str(count)] for result in members]
                row["latency_ms"][f"{engine}_{count}"] = mean_std(values)
        rows.append(row)
    # Dense first, then SUBP and 1xN per (N, sparsity), tfmot last.
    order = {"dense": 0, "subp": 1, "1xn": 2, "tfmot": 3}
    rows.sort(
        key=lambda row: (
            {"dense": 0, "tfmot": 2}.get(row["method"], 1),
            row["n"] or 0,
            row["sparsity"],
            order[row["method"]],
            row["criterion"] or "",
        )
    )
    return rows


def comparisons(rows: list[dict]) -> list[str]:
    """One sentence per (N, sparsity, criterion): SUBP against the 1xN baseline."""
    baselines = {(row["n"], row["sparsity"]): row for row in rows if row["method"] == "1xn"}
    sentences = []
    for row in rows:
        if row["method"] != "subp" or (row["n"], row["sparsity"]) not in baselines:
            continue
        base = baselines[(row["n"], row["sparsity"])]
        difference = 100 * (row["test_accuracy_mean"] - base["test_accuracy_mean"])
        stds = [s for s in (row["test_accuracy_std"], base["test_accuracy_std"]) if s is not None]
        spread = 100 * max(stds) if stds else None
        verb = "beats" if difference > 0 else ("ties" if difference == 0 else "loses to")
        text = (
            f"1x{row['n']}, {100 * row['sparsity']:g} %: SUBP {row['criterion'].upper()} "
            f"{verb} the 1xN baseline by {abs(difference):.2f} points "
            f"({100 * row['test_accuracy_mean']:.2f} % against {100 * base['test_accuracy_mean']:.2f} %)"
        )
        if spread is None:
            text += "; one seed, no standard deviation"
        elif abs(difference) <= spread:
            text += f", within one standard deviation ({spread:.2f}): not a clear difference"
        else:
            text += f", more than one standard deviation ({spread:.2f})"
        delegate = row["latency_ms"].get("delegate_1")
        base_delegate = base["latency_ms"].get("delegate_1")
        if delegate and base_delegate:
            text += (
                f"; delegate batch-1 latency at 1 thread {delegate[0]:.3f} ms against "
                f"{base_delegate[0]:.3f} ms (balance {row['balance_ratio_mean']:.2f} against "
                f"{base['balance_ratio_mean']:.2f})"
            )
        sentences.append(text + ".")
    return sentences


def _cell(pair: tuple[float, float | None], scale: float = 1.0, digits: int = 3) -> str:
    mean, std = pair
    if std is None:
        return f"{scale * mean:.{digits}f}"
    return f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}"


def subp_markdown(record: dict) -> str:
    """The table, its conditions and the SUBP-against-1xN sentences as markdown."""
    threads = record["threads"]
    latency_columns = [f"delegate {t} thr ms" for t in threads] + [
        f"XNNPACK {t} thr ms" for t in threads
    ]
    lines = [
        f"Command: `{record['command']}`",
        "",
        f"{record['model']} on {record['data_source']}; {record['epochs']} epochs per run, the SUBP "
        "paper's recipe (SGD momentum 0.9, per-epoch cosine from 0.1, label smoothing 0.1, coupled "
        f"weight decay 1e-4, batch {record['batch_size']}); seeds {record['seeds']}. Test accuracy "
        "of the final model on the whole test split, mean ± sample standard deviation over the "
        "seeds. Balance: the largest per-layer max / mean kept blocks per group (1.00 = uniform). "
        "Latency: batch 1, the `.tflite` of each run, median of "
        f"{record['latency_repeats']} interleaved samples per engine, then mean ± std over seeds; "
        "claimed: conv nodes the delegate took / all (delegate defaults unless the command sets "
        "--min_sparsity). 1-minute load average when the runs were measured: "
        f"{record['run_load_1min'][0]:.2f} to {record['run_load_1min'][1]:.2f} (above 1.0, other "
        "jobs shared the 2 cores and latencies are noisier). The runs' recorded times: "
        f"training {record['recorded_minutes']['training_wall']:.1f} min wall "
        f"({record['recorded_minutes']['training_cpu']:.1f} min CPU), evaluation "
        f"{record['recorded_minutes']['evaluation_wall']:.1f} min; this invocation "
        f"{record['wall_minutes']:.1f} min ({record['runs_trained']} runs trained or resumed, "
        f"{record['runs_reused']} reused).",
        "",
        "| model | test accuracy % | balance | "
        + " | ".join(latency_columns)
        + " | claimed | command |",
        "|---|---:|---:|" + "---:|" * len(latency_columns) + "---|---|",
    ]
    for row in record["rows"]:
        balance = "-" if row["balance_ratio_mean"] is None else f"{row['balance_ratio_mean']:.2f}"
        cells = [
            row["label"],
            _cell((row["test_accuracy_mean"], row["test_accuracy_std"]), 100, 2),
            balance,
        ]
        cells += [_cell(row["latency_ms"][f"delegate_{t}"]) for t in threads]
        cells += [_cell(row["latency_ms"][f"xnnpack_{t}"]) for t in threads]
        cells += [", ".join(row["claimed"]), f"`{row['command']}`"]
        lines.append("| " + " | ".join(cells) + " |")
    for label, reason in record["skipped"].items():
        lines.append(f"| {label} | {reason} |" + " |" * (len(latency_columns) + 3))
    lines.append("")
    if record["missing_runs"]:
        lines += [
            f"Not finished yet, so not in the table ({len(record['missing_runs'])} runs): "
            + ", ".join(record["missing_runs"])
            + ".",
            "",
        ]
    if record["sentences"]:
        lines += ["SUBP against the 1xN baseline:", ""]
        lines += [f"- {sentence}" for sentence in record["sentences"]]
        lines.append("")
    lines.append(
        "Test accuracy is the final Keras model's on the whole test split; its `.tflite` with the "
        "delegate agrees to within "
        f"{100 * record['tflite_accuracy_difference_max']:.2f} points on every run."
    )
    return "\n".join(lines) + "\n"


def subp_table(
    values: flags.FlagValues, settings: SubpSettings, docs_path: Path | None, console
) -> dict:
    """--table=subp: run or reuse every run, then write the table (and the docs section)."""
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    started, load_start = time.perf_counter(), load_average()
    console(
        f"{len(settings.specs)} runs in {settings.out_dir} (load average {load_start}); "
        f"{values.epochs} epochs each"
    )
    results, skipped, reused, missing = run_subp_table(settings, console)
    rows = aggregate(results, settings.threads, settings.seeds)
    record = {
        "table": "subp",
        "command": command_line(values),
        "model": values.model,
        "dataset": values.dataset,
        "data_source": results[0]["data_source"] if results else "?",
        "epochs": values.epochs,
        "batch_size": values.batch_size,
        "seeds": list(settings.seeds),
        "threads": list(settings.threads),
        "latency_repeats": settings.latency_repeats,
        "load_start": load_start,
        "load_end": load_average(),
        "wall_minutes": (time.perf_counter() - started) / 60,
        "runs": [result["name"] for result in results],
        "runs_reused": reused,
        "runs_trained": len(results) - reused,
        "run_load_1min": [
            min((float(r["load_average"].split()[0]) for r in results), default=0.0),
            max((float(r["load_average"].split()[0]) for r in results), default=0.0),
        ],
        "recorded_minutes": {
            key: sum(result["seconds"].get(field, 0.0) for result in results) / 60
            for key, field in (
                ("training_wall", "training_this_session"),
                ("training_cpu", "training_cpu_this_session"),
                ("evaluation_wall", "evaluation"),
            )
        },
        "rows": rows,
        "skipped": skipped,
        "missing_runs": missing,
        "sentences": comparisons(rows),
        "tflite_accuracy_difference_max": max(
            (row["tflite_accuracy_difference_max"] for row in rows), default=0.0
        ),
    }
    markdown = subp_markdown(record)
    write_json_atomically(settings.out_dir / "subp.json", record)
    write_text_atomically(
        settings.out_dir / "subp.md", "# SUBP against its baselines\n\n" + markdown
    )
    if docs_path is not None:
        write_docs(docs_path, {"subp": markdown})
        console(f"replaced the subp section of {docs_path}")
    console(f"wrote {settings.out_dir / 'subp.md'} and subp.json")
    print(markdown, flush=True)
    return record


def command_line(values: flags.FlagValues) -> str:
    """`python -m scripts.reproduce` with the flags given explicitly (docs flags left out)."""
    parts = ["python", "-m", "scripts.reproduce"]
    for name in (
        "table",
        "quick",
        "out_dir",
        "dataset",
        "data_dir",
        "seeds",
        "n",
        "sparsity",
        "criteria",
        "methods",
        "epochs",
        "model",
        "batch_size",
        "steps_per_epoch",
        "eval_steps",
        "train_jobs",
        "threads",
        "latency_repeats",
        "min_sample_ms",
        "min_sparsity",
    ):
        flag = values[name]
        if not flag.present:
            continue
        if isinstance(flag.value, bool):
            parts.append(f"--{name}" if flag.value else f"--no{name}")
        elif isinstance(flag.value, list):
            parts.append(f"--{name}={','.join(flag.value)}")
        else:
            parts.append(f"--{name}={flag.value}")
    return shlex.join(parts)


# ---------------------------------------------------------------------------------------------
# --table=delegate|udfc|dfmpc: the programs that made the existing tables


@dataclass(frozen=True)
class ProgramRun:
    """One command behind an existing table: program, its flags, output folder flag and file."""

    name: str
    program: str
    arguments: tuple[str, ...]
    out_flag: str  # the program's output folder flag
    result_file: str  # written last by the program: its presence means the run finished


# The flags printed above the tables in docs/RESULTS.md and docs/compression.md; only the output
# folder differs (under --out_dir), which changes no number.
PROGRAM_RUNS = {
    "delegate": (
        ProgramRun(
            "model_level",
            "scripts.benchmark_delegate",
            ("--levels=model", "--batches=1,8", "--threads=1,2", "--repeats=11"),
            "out_dir",
            "delegate_benchmark.md",
        ),
        ProgramRun(
            "layer_level",
            "scripts.benchmark_delegate",
            (
                "--levels=layer",
                "--nets=resnet50",
                "--block_n=4,8,16,32",
                "--sparsity=0.5,0.75,0.9",
                "--threads=1",
                "--repeats=5",
            ),
            "out_dir",
            "delegate_benchmark.md",
        ),
    ),
    "udfc": (
        ProgramRun(
            "vgg",
            "scripts.dfcompress_experiment",
            ("--models=vgg", "--epochs=3"),
            "output_dir",
            "results.md",
        ),
        ProgramRun(
            "resnet",
            "scripts.dfcompress_experiment",
            ("--models=resnet", "--epochs=1", "--noresnet50_latency"),
            "output_dir",
            "results.md",
        ),
    ),
}
PROGRAM_RUNS["dfmpc"] = PROGRAM_RUNS["udfc"]


def markdown_sections(text: str) -> list[tuple[str, list[str]]]:
    """(heading, lines) of every `## ` section of a markdown report; heading "" for the part
    before the first one (the `# ` title line dropped)."""
    sections: list[tuple[str, list[str]]] = [("", [])]
    for line in text.splitlines():
        if line.startswith("## "):
            sections.append((line[3:].strip(), []))
        elif not line.startswith("# "):
            sections[-1][1].append(line)
    return sections


def first_table_only(lines: list[str]) -> list[str]:
    """`lines` up to the end of their first markdown table."""
    kept, in_table = [], False
    for line in lines:
        if line.startswith("|"):
            in_table = True
        elif in_table:
            break
        kept.append(line)
    return kept


def program_table_sections(table: str, reports: dict[str, str]) -> dict[str, str]:
    """The docs sections of `table` (section name -> markdown) from the programs' reports."""

    def block(heading: str, lines: list[str]) -> str:
        # benchmark_delegate notes a missing plot (model level only); not part of a table.
        lines = [line for line in lines if not line.startswith("No plot:")]
        body = "\n".join(lines).strip("\n")
        return f"**{heading}**\n\n{body}" if heading else body

    if table == "delegate":
        sections = {}
        for run_name, section in (
            ("model_level", "delegate-model"),
            ("layer_level", "delegate-layer"),
        ):
            parts = markdown_sections(reports[run_name])
            blocks = [block("", parts[0][1])]
            for heading, lines in parts[1:]:
                if heading.startswith("Single-conv"):
                    lines = first_table_only(lines)  # the per-layer rows stay in the report
                blocks.append(block(heading, lines))
            sections[section] = "\n\n".join(blocks)
        return sections
    blocks = []
    for run_name in ("vgg", "resnet"):
        for heading, lines in markdown_sections(reports[run_name])[1:]:
            wanted = (
                "Prune / Neuron Merging / UDFC" in heading
                if table == "udfc"
                else heading.startswith(("DF-MPC", "Deployment"))
            )
            if wanted:
                blocks.append(block(f"{heading} ({run_name} run)", lines))
    return {table: "\n\n".join(blocks)}


def program_table(values: flags.FlagValues, table: str, docs_path: Path | None, console) -> dict:
    """--table=delegate|udfc|dfmpc: run (or reuse) the programs, collect their tables."""
    out_dir = default_out_dir(values)
    out_dir.mkdir(parents=True, exist_ok=True)
    reports, commands = {}, {}
    runs = PROGRAM_RUNS[table]
    for index, run in enumerate(runs, start=1):
        folder = (out_dir / "runs" / run.name).resolve()
        # The programs run in the repository (run_program's cwd): a folder inside it is named
        # relative to it, so the command printed above a table is the same on every clone.
        shown = folder.relative_to(REPOSITORY) if folder.is_relative_to(REPOSITORY) else folder
        arguments = [run.program, *run.arguments, f"--{run.out_flag}={shown}"]
        commands[run.name] = shlex.join(["python", "-m", *arguments])
        # Runs recorded before the relative form named the folder absolutely; still theirs.
        legacy = shlex.join(["python", "-m", *arguments[:-1], f"--{run.out_flag}={folder}"])
        result = folder / run.result_file
        recorded = folder / "reproduce_command.txt"
        label = f"[{index}/{len(runs)}] {run.name}"
        if (
            result.exists()
            and recorded.exists()
            and recorded.read_text() in (commands[run.name], legacy)
        ):
            console(f"{label}: reused {result}")
        else:
            if result.exists():
                raise RunFailed(f"{result} was made by another command; left untouched")
            folder.mkdir(parents=True, exist_ok=True)
            console(f"{label}: {commands[run.name]} (load average {load_average()})")
            started = time.perf_counter()
            run_program(arguments, out_dir / f"{run.name}_output.log")
            write_text_atomically(recorded, commands[run.name])
            console(f"{label}: done in {(time.perf_counter() - started) / 60:.1f} min")
        reports[run.name] = result.read_text()
    sections = program_table_sections(table, reports)
    markdown = "\n\n".join(sections.values()) + "\n"
    write_text_atomically(out_dir / f"{table}.md", f"# {table} tables\n\n{markdown}")
    write_json_atomically(
        out_dir / f"{table}.json",
        {"table": table, "command": command_line(values), "runs": commands, "sections": sections},
    )
    if docs_path is not None:
        write_docs(docs_path, sections)
        console(f"replaced {', '.join(sections)} in {docs_path}")
    console(f"wrote {out_dir / f'{table}.md'} and {table}.json")
    print(markdown, flush=True)
    return {"sections": sections, "commands": commands}


# ---------------------------------------------------------------------------------------------
# Entry point


def fail(message: str, code: int = 2) -> None:
    """One line on stderr, then exit with `code`."""
    print(f"{PROGRAM}: error: {message}", file=sys.stderr)
    sys.exit(code)


def run(values: flags.FlagValues) -> dict:
    """Check the flags (nothing is written before they pass), then build the table."""

    from absl import logging

    logging.set_verbosity(logging.WARNING)  # the TFLite converter logs every step at INFO

    console_lock = threading.Lock()

    def console(text: str) -> None:
        # The training threads report concurrently; print() writes the text and its newline
        # separately, so two lines could merge. One write per line, under a lock.
        line = f"[{PROGRAM} {time.strftime('%H:%M:%S')}] {text}\n"
        with console_lock:
            sys.stdout.write(line)
            sys.stdout.flush()

    try:
        table = check_table(values)
        apply_quick_defaults(values)
        if values.quick and table != "subp":
            raise FlagError(f"--quick applies to --table=subp only, not --table={table}")
        docs_path = check_docs_flags(values, table)
        settings = None
        if table == "subp":
            # TensorFlow's C++ start-up notices ignore TF_CPP_MIN_LOG_LEVEL; train_subp imports
            # it with file descriptor 2 silenced.
            from scripts.train_subp import import_tensorflow_quietly

            import_tensorflow_quietly()
            settings = subp_settings(values)
    except FlagError as error:
        fail(str(error))
    try:
        if settings is not None:
            return subp_table(values, settings, docs_path, console)
        return program_table(values, table, docs_path, console)
    except RunFailed as error:
        fail(str(error), code=1)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        fail(f"unexpected arguments: {' '.join(argv[1:])}")
    run(FLAGS)


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with its errors as one line on stderr (exit status 2)."""
    try:
        return FLAGS(argv)
    except flags.Error as error:
        fail(str(error).splitlines()[0])


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=parse_flags)
