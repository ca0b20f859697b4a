"""Benchmarks: `lab bench NAME [options]` runs `lab.bench.NAME.main(argv)`, which measures and
writes JSON (with provenance) under `reports/bench/NAME.json` unless `--out` says otherwise.

Each benchmark is its own module here; targets are checked by these, never by timed tests. Modules
whose names start with `_` are shared pieces, not benchmarks (`_timing`: wall and CPU seconds per call).
"""

from __future__ import annotations

import importlib
import pkgutil


def available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def run(name: str, argv: list[str]) -> None:
    names = available()
    if name not in names:
        raise SystemExit(f"unknown benchmark {name!r}; available: {', '.join(names)}")
    importlib.import_module(f"{__name__}.{name}").main(argv)
