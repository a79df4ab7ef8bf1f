from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agl_optimizer.contract import SUPPORTED_ALGORITHMS, validate_output
from fake_llm_server import canned, fake_llm_server
from synthetic import build_apo_input, build_extractor_input, build_input, build_replier_input, with_algorithm, with_malformed_rollouts

PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agl_optimizer", *map(str, args)],
        cwd=PACKAGE_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def write_input(directory: Path, document: Any, name: str = "in.json") -> Path:
    path = directory / name
    path.write_text(document if isinstance(document, str) else json.dumps(document), encoding="utf-8")
    return path


def propose(directory: Path, document: Any) -> tuple[subprocess.CompletedProcess[str], Path]:
    output_path = directory / "out.json"
    return run_cli("propose", "--input", write_input(directory, document), "--output", output_path), output_path


def test_propose_writes_a_valid_output_and_reports_progress(tmp_path: Path) -> None:
    document = with_malformed_rollouts(build_input())
    result, output_path = propose(tmp_path, document)
    assert result.returncode == 0, result.stderr
    output = json.loads(output_path.read_text(encoding="utf-8"))
    validate_output(output, document)
    assert len(output["candidates"]) == 3
    assert not (tmp_path / "out.json.tmp").exists()

    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert all(event["event"] == "progress" for event in events)
    assert events[0]["done"] == 0
    assert events[-1]["done"] == events[-1]["total"]
    assert [event["done"] for event in events] == sorted(event["done"] for event in events)


def test_same_seed_gives_identical_bytes_and_another_seed_may_differ(tmp_path: Path) -> None:
    outputs = []
    for run, seed in enumerate((42, 42, 43)):
        directory = tmp_path / f"run{run}"
        directory.mkdir()
        result, output_path = propose(directory, build_input(seed=seed))
        assert result.returncode == 0, result.stderr
        outputs.append(output_path.read_bytes())
    assert outputs[0] == outputs[1]
    assert json.loads(outputs[2])["seed"] == 43


BAD_INPUTS: list[tuple[str, Any, str]] = [
    ("not JSON", "{this is not json", "error: input "),
    ("contract v2", {**build_input(), "schema_version": 2}, "error: input schema_version: unsupported schema version 2, this optimizer speaks 3"),
    ("unknown algorithm", {**build_input(), "algorithm": "evolution"}, 'error: input algorithm: unsupported algorithm "evolution"'),
    ("unknown top-level key", {**build_input(), "notes": "hi"}, 'error: input: unknown key "notes"'),
    (
        "reward out of range",
        {**build_input(), "rollouts": [{**build_input()["rollouts"][0], "reward": 2}]},
        "error: input rollouts[0].reward: expected a number in [-1, 1], got 2",
    ),
    (
        "label component names a missing component",
        {**build_input(), "agent": {**build_input()["agent"], "label_components": {"category": "topics"}}},
        'error: input agent.label_components.category: names no component of agent.components: "topics"',
    ),
    (
        "no scored rollouts",
        {**build_input(), "rollouts": [{**build_input()["rollouts"][0], "reward": None}]},
        'error: input parents[0]: no scored rollouts: every reward of the 1 rollouts with prompt_id "incumbent" is null',
    ),
    ("empty rollouts", {**build_input(), "rollouts": []}, "error: input rollouts: empty list"),
    ("apo without llm", {**build_input(), "algorithm": "apo", "params": {}}, 'error: input llm: algorithm "apo" calls an LLM'),
    (
        "apo with an unreachable URL scheme",
        {**build_apo_input("ftp://127.0.0.1/v1")},
        'error: input llm.base_url: expected an http:// or https:// URL with a host, got "ftp://127.0.0.1/v1"',
    ),
]


@pytest.mark.parametrize(("document", "message"), [case[1:] for case in BAD_INPUTS], ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_exits_2_with_one_error_line_and_no_output(tmp_path: Path, document: Any, message: str) -> None:
    result, output_path = propose(tmp_path, document)
    assert result.returncode == 2
    assert result.stderr.startswith(message)
    assert result.stderr.count("\n") == 1
    assert not output_path.exists()
    assert not (tmp_path / "out.json.tmp").exists()


def test_missing_input_file_exits_2(tmp_path: Path) -> None:
    result = run_cli("propose", "--input", tmp_path / "absent.json", "--output", tmp_path / "out.json")
    assert result.returncode == 2
    assert result.stderr.startswith("error: cannot read input ")
    assert not (tmp_path / "out.json").exists()


def test_unexpected_failure_exits_1_and_writes_nothing(tmp_path: Path) -> None:
    result = run_cli("propose", "--input", write_input(tmp_path, build_input()), "--output", tmp_path / "missing-dir" / "out.json")
    assert result.returncode == 1
    assert "Traceback" in result.stderr


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == "agl-optimizer 0.3.0 contract 3"


def test_describe() -> None:
    result = run_cli("describe")
    assert result.returncode == 0
    assert json.loads(result.stdout) == {"contract": 3, "algorithms": ["llm-free", "few-shot", "apo", "gepa"]}


@pytest.mark.parametrize("args", [["optimize"], ["propose", "--input", "in.json"], []], ids=["unknown command", "missing --output", "no command"])
def test_usage_errors_exit_2(args: list[str]) -> None:
    assert run_cli(*args).returncode == 2


SHAPES = {"classifier": build_input, "extractor": build_extractor_input, "text agent": build_replier_input}


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("algorithm", SUPPORTED_ALGORITHMS)
def test_every_supported_algorithm_runs_for_every_agent_shape(tmp_path: Path, algorithm: str, shape: str) -> None:
    with fake_llm_server(canned("The instructions are vague.", "a clearer description of this label", "Check each answer against the message.")) as server:
        document = with_algorithm(SHAPES[shape](), algorithm, server.base_url if algorithm in ("apo", "gepa") else None)
        result, output_path = propose(tmp_path, document)
    assert result.returncode == 0, result.stderr
    output = json.loads(output_path.read_text(encoding="utf-8"))
    validate_output(output, document)
    assert output["algorithm"] == algorithm and output["candidates"], output["stats"]
    events = [json.loads(line) for line in result.stderr.splitlines()]
    assert events[-1]["done"] == events[-1]["total"]


REFUSALS: list[tuple[str, Any, str]] = [
    (
        "llm-free without editable labels or examples",
        {**build_replier_input(), "agent": {**build_replier_input()["agent"], "editable": ["instructions"]}},
        'error: input agent: algorithm "llm-free" cannot run: it sharpens label descriptions and writes demonstrations, but the agent has no label component',
    ),
    (
        "few-shot without an examples component",
        with_algorithm({**build_extractor_input(), "agent": {**build_extractor_input()["agent"], "examples_component": None}}, "few-shot"),
        'error: input agent: algorithm "few-shot" cannot run: it writes demonstrations to the examples component, but agent.examples_component is null',
    ),
    (
        "apo with only the examples editable",
        with_algorithm({**build_extractor_input(), "agent": {**build_extractor_input()["agent"], "editable": ["examples"]}}, "apo", "http://127.0.0.1:9/v1"),
        'error: input agent: algorithm "apo" cannot run: it edits label descriptions or free-text components, but the agent has no editable label component',
    ),
]


@pytest.mark.parametrize(("document", "message"), [case[1:] for case in REFUSALS], ids=[case[0] for case in REFUSALS])
def test_an_algorithm_refuses_an_agent_it_can_do_nothing_for_with_exit_2(tmp_path: Path, document: Any, message: str) -> None:
    result, output_path = propose(tmp_path, document)
    assert result.returncode == 2
    assert result.stderr.startswith(message)
    assert result.stderr.count("\n") == 1, "one line, no progress"
    assert not output_path.exists()


def test_lone_surrogates_from_javascript_strings_survive(tmp_path: Path) -> None:
    document = build_input()
    document["rollouts"][0]["message"] = "Post: Shipped the Rust plugin \ud83d"
    result, output_path = propose(tmp_path, document)
    assert result.returncode == 0, result.stderr
    assert "\\ud83d" in output_path.read_text(encoding="ascii")
