"""`lab bench NAME [options]` hands every option after NAME, --help included, to the benchmark."""

import re

import pytest

from lab.cli import main


def test_bench_help_is_the_benchmarks_own(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "world", "--help"])
    assert exit_info.value.code == 0
    assert "lab bench world" in capsys.readouterr().out


def test_unknown_benchmark_lists_the_available_ones(run_lab):
    code, _, err = run_lab("bench", "nosuch")
    assert code == 2 and re.search(r"^lab bench: error: .*'nosuch'.*geneval.*world", err)


def test_bench_help_lists_the_benchmarks(run_lab):
    code, out, _ = run_lab("bench", "--help")
    assert code == 0 and all(name in out for name in ("geneval", "importance", "optim", "sample", "train", "world"))
