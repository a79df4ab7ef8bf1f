"""Command line: `python -m agl_optimizer propose --input IN.json --output OUT.json`.

Exit codes: 0 success; 2 bad input (one `error: ...` line on stderr, no output written);
1 a crash, which the caller treats as retryable: a traceback, or one `error: LLM request failed: ...`
line when the LLM endpoint failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agl_optimizer import __version__, apo, few_shot, gepa, llm_free
from agl_optimizer.contract import (
    CONTRACT_VERSION,
    SUPPORTED_ALGORITHMS,
    BadInput,
    Proposal,
    ProposeRequest,
    build_output,
    load_json,
    parse_request,
    validate_output,
)
from agl_optimizer.llm_client import LlmError

EXIT_CRASH = 1
EXIT_BAD_INPUT = 2


@dataclass(frozen=True)
class Algorithm:
    check_applicable: Callable[[ProposeRequest], None]  # raises BadInput for an agent it can do nothing for
    progress_steps: Callable[[ProposeRequest], int]
    propose: Callable[[ProposeRequest, Callable[[str], None]], Proposal]


ALGORITHMS: dict[str, Algorithm] = {
    name: Algorithm(module.check_applicable, module.progress_steps, module.propose)
    for name, module in (("llm-free", llm_free), ("few-shot", few_shot), ("apo", apo), ("gepa", gepa))
}


class ProgressReporter:
    """Writes `{"event": "progress", ...}` JSON lines to stderr for the calling activity's heartbeats."""

    def __init__(self, total: int) -> None:
        self.done = 0
        self.total = total

    def report(self, message: str) -> None:
        event = {"event": "progress", "done": self.done, "total": self.total, "message": message}
        print(json.dumps(event), file=sys.stderr, flush=True)

    def step(self, message: str) -> None:
        self.done += 1
        self.report(message)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agl_optimizer", description="Proposes better prompt components from scored rollouts.")
    parser.add_argument("--version", action="version", version=f"agl-optimizer {__version__} contract {CONTRACT_VERSION}")
    commands = parser.add_subparsers(dest="command", required=True)
    propose = commands.add_parser("propose", help="read a contract v3 request and write candidate prompts")
    propose.add_argument("--input", required=True, type=Path, help="request JSON file")
    propose.add_argument("--output", required=True, type=Path, help="where to write the result JSON (atomically)")
    commands.add_parser("describe", help="print the contract version and the supported algorithms as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "describe":
        print(json.dumps({"contract": CONTRACT_VERSION, "algorithms": list(SUPPORTED_ALGORITHMS)}))
        return 0
    return run_propose(args.input, args.output)


def run_propose(input_path: Path, output_path: Path) -> int:
    try:
        document = read_input(input_path)
        request = parse_request(document)
        algorithm = ALGORITHMS[request.algorithm]
        algorithm.check_applicable(request)
    except BadInput as problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT

    # One step for reading the input, one for writing the output, the rest reported by the algorithm.
    progress = ProgressReporter(total=algorithm.progress_steps(request) + 2)
    progress.report(f"started {request.algorithm} round {request.round} for {request.request_id}")
    progress.step(f"read {len(request.rollouts)} rollouts and {len(request.parents)} parents from {input_path}")
    try:
        proposal = algorithm.propose(request, progress.step)
    except LlmError as problem:
        # The endpoint failing is not bad input: exit as a crash so that the activity retries.
        print(f"error: LLM request failed: {problem}", file=sys.stderr)
        return EXIT_CRASH

    output = build_output(request, proposal)
    # An output that breaks the contract is a bug here, not bad input: it propagates as a crash.
    validate_output(output, document)
    # ASCII-only JSON: a lone surrogate from a string cut in JavaScript cannot break the encoding.
    write_atomically(output_path, json.dumps(output, indent=2) + "\n")
    progress.step(f"wrote {len(proposal.candidates)} candidates to {output_path}")
    return 0


def read_input(path: Path) -> Any:
    try:
        source = path.read_text(encoding="utf-8")
    except OSError as error:
        raise BadInput(f"cannot read input {path}: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise BadInput(f"input {path} is not UTF-8 text: {error.reason} at byte {error.start}") from None
    return load_json(source, f"input {path}")


def write_atomically(path: Path, content: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # makes the rename itself durable
    finally:
        os.close(directory)


if __name__ == "__main__":
    sys.exit(main())
