"""Run a command as a local multi-worker tf.distribute job: one process per worker on loopback.

Each worker gets the same command and its own TF_CONFIG (cluster of 127.0.0.1 ports that were
free a moment ago, task index i). Used by the tests of `scripts/train_subp.py
--strategy=multiworker`; also handy to try a multi-worker run on one machine:

    python -m scripts.multiworker_launcher --workers 2 -- \\
        python -m scripts.train_subp --strategy=multiworker --out_dir=/tmp/mw ...
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass


def free_loopback_ports(count: int) -> list[int]:
    """`count` distinct TCP ports on 127.0.0.1 that the OS reported free (all held open
    together while choosing, so they differ)."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


def tf_configs(num_workers: int) -> list[dict]:
    """One TF_CONFIG per worker: a cluster of `num_workers` loopback workers, worker 0 chief."""
    addresses = [f"127.0.0.1:{port}" for port in free_loopback_ports(num_workers)]
    return [
        {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
        for index in range(num_workers)
    ]


@dataclass
class WorkerResult:
    index: int
    returncode: int
    stdout: str
    stderr: str


def run_workers(
    command: Sequence[str],
    num_workers: int = 2,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    timeout: float = 600,
) -> list[WorkerResult]:
    """Start `command` once per worker with its TF_CONFIG, wait for all, return their results.

    If the workers have not all finished within `timeout` seconds, every worker still running
    is killed (a worker whose peer died would otherwise wait for it forever) and
    `subprocess.TimeoutExpired` is raised.
    """
    base_env = dict(os.environ if env is None else env)
    with ExitStack() as stack:
        # Output goes to files, not pipes: a worker filling a pipe nobody reads would block.
        outputs = [
            (
                stack.enter_context(tempfile.TemporaryFile("w+")),
                stack.enter_context(tempfile.TemporaryFile("w+")),
            )
            for _ in range(num_workers)
        ]
        processes = [
            subprocess.Popen(
                list(command),
                env={**base_env, "TF_CONFIG": json.dumps(config)},
                cwd=cwd,
                stdout=stdout,
                stderr=stderr,
                text=True,
            )
            for config, (stdout, stderr) in zip(tf_configs(num_workers), outputs, strict=True)
        ]
        deadline = time.monotonic() + timeout
        try:
            for process in processes:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        results = []
        for index, (process, (stdout, stderr)) in enumerate(zip(processes, outputs, strict=True)):
            stdout.seek(0)
            stderr.seek(0)
            results.append(WorkerResult(index, process.returncode, stdout.read(), stderr.read()))
        return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="number of worker processes")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds before killing all")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to run")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command or args.workers < 1:
        parser.error("give --workers >= 1 and a command after --")
    results = run_workers(command, args.workers, timeout=args.timeout)
    for result in results:
        print(f"--- worker {result.index}: exit status {result.returncode}")
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
    return max(abs(result.returncode) for result in results)


if __name__ == "__main__":
    sys.exit(main())
