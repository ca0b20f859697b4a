"""`lab bench NAME [options]` hands every option after NAME, --help included, to the benchmark."""

import pytest

from lab.cli import main


def test_bench_help_is_the_benchmarks_own(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "world", "--help"])
    assert exit_info.value.code == 0
    assert "lab bench world" in capsys.readouterr().out


def test_unknown_benchmark_lists_the_available_ones():
    with pytest.raises(SystemExit, match="available: .*geneval.*world"):
        main(["bench", "nosuch"])
