"""`lab bench app`: the app under load, served as `python app.py` on loopback.

1. Best-of-16 end to end (generate + judge + rank + figures) on the first model through the API,
   and the time from the click to the first candidates (goals: <= 12 s, <= 2 s on 2 CPU cores).
2. A prunable model (L) at half depth vs full depth: best-of-8 seconds, ratio vs the block ratio
   (goal: the half-depth run is no slower than the block ratio allows, i.e. ratio <= 1).
3. Load: `--clients` gradio_client clients at once, each one small best-of-N; latency p50/p95,
   errors, the longest queue seen vs the queue's bound, and the server's peak RSS.
4. Optionally, a headless-Chromium run that saves a screenshot (`--screenshot`).

`--quick` (the test suite) serves whatever `--models` says with few clients, few steps and small N.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

from lab.judge import DEFAULT_JUDGE
from lab.provenance import REPO_ROOT, repo_path, write_json
from lab.sampling import SamplerConfig

STARTUP_TIMEOUT_S = 300  # loading torch, diffusers and the first model on a busy CPU
READY_TIMEOUT_S = 30  # one page request while the server starts (a busy CPU serves it slowly)
POLL_S = 0.02  # how often a client looks for new outputs or its queue position
FULL = {
    "clients": 20,
    "n": 4,
    "steps": SamplerConfig.steps,
    "best_of": 16,
    "best_of_repeats": 3,
    "depth_n": 8,
    "depth_repeats": 3,
    "deadline_s": 900,
}
QUICK = {
    "clients": 3,
    "n": 2,
    "steps": 2,
    "best_of": 4,
    "best_of_repeats": 1,
    "depth_n": 2,
    "depth_repeats": 1,
    "deadline_s": 300,
}
GOALS = {"best_of_16_s": 12.0, "first_candidate_s": 2.0, "depth_time_ratio_over_block_ratio": "t(d/2)/t(d) <= 1"}
PERCENTILE_95 = 0.95
JUDGE_SIZE = "lab"  # lab.judge_train.JUDGE_SIZES entry of the judge the app ships with


def untrained_judge(path: Path, size: str | None = None) -> Path:
    """A freshly initialised judge of the lab's size saved at `path` (same cost as the trained one)."""
    from lab.judge_train import build_judge

    model, processor = build_judge(size or JUDGE_SIZE)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> dict:
    """Current and peak resident memory of process `pid`, in MiB (Linux /proc)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return {"rss_mb": fields.get("VmRSS"), "peak_rss_mb": fields.get("VmHWM")}


class Server:
    """`python app.py` in a subprocess on a free loopback port."""

    def __init__(self, models: list[str], judge: str | None, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        cmd = [
            sys.executable,
            str(REPO_ROOT / "app.py"),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--models",
            *models,
        ]
        if judge:
            cmd += ["--judge", judge]
        env = {
            **os.environ,
            "GRADIO_ANALYTICS_ENABLED": "False",
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        }
        self._log = open(log, "w")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT)

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT_S) -> float:
        start = time.perf_counter()
        while time.perf_counter() - start < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"the app exited with code {self.process.returncode}; see {self._log.name}")
            try:
                with urllib.request.urlopen(self.url, timeout=READY_TIMEOUT_S) as page:
                    page.read()
                    return time.perf_counter() - start
            except OSError:
                time.sleep(POLL_S * 10)
        raise RuntimeError(f"the app did not answer on {self.url} within {timeout} s; see {self._log.name}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()


def timed_run(client, prompt: str, model: str, depth: int, n: int, steps: int, judge: str, seed: int = 0) -> dict:
    """One best-of-N through the API: seconds to the first streamed candidates and to the end, the
    longest queue seen, and the run's own compute figures."""
    start = time.perf_counter()
    job = client.submit(
        prompt, model, depth, n, steps, SamplerConfig.guidance_scale, seed, judge, api_name="/best_of_n"
    )
    first, queue = None, 0
    while not job.done():
        status = job.status()
        queue = max(queue, status.queue_size or 0)
        if first is None and job.outputs():
            first = time.perf_counter() - start
        time.sleep(POLL_S)
    outputs = job.result()
    end = time.perf_counter() - start
    summary = outputs[-1]
    return {
        "seconds": end,
        "first_candidate_s": first if first is not None else end,
        "max_queue_seen": queue,
        "candidates": len(outputs[0]),
        "compute_s": summary["seconds"],
        "blocks": summary["blocks"],
        "model_calls": summary["model_calls"],
        "judge_calls": summary["judge_calls"],
        "judge": summary["judge"],
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def load_test(url: str, clients: int, deadline_s: float, **run) -> dict:
    """`clients` threads, each its own gradio_client Client, start a best-of-N at once."""
    from gradio_client import Client

    results, errors = [None] * clients, []

    def one(i):
        try:
            results[i] = timed_run(Client(url, verbose=False), seed=i, **run)
        except Exception as e:  # every failure is counted and reported, none stops the others
            errors.append(f"client {i}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(0.0, deadline_s - (time.perf_counter() - start)))
    wall = time.perf_counter() - start
    done = [r for r in results if r is not None]
    unfinished = clients - len(done) - len(errors)
    latencies = [r["seconds"] for r in done]
    return {
        "clients": clients,
        "completed": len(done),
        "errors": len(errors) + unfinished,
        "error_messages": errors[:5],
        "unfinished_at_deadline": unfinished,
        "wall_s": wall,
        "deadline_s": deadline_s,
        "latency_s": {
            "p50": percentile(latencies, 0.5),
            "p95": percentile(latencies, PERCENTILE_95),
            "max": max(latencies),
        }
        if latencies
        else {},
        "max_queue_seen": max((r["max_queue_seen"] for r in done), default=0),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="lab bench app", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["S=checkpoints/S", "L=checkpoints/L"], metavar="NAME=PATH")
    p.add_argument("--judge", default=None, help="judge directory (default: the app's); missing: the oracle")
    p.add_argument("--prompt", default="a photo of two circles")
    p.add_argument("--quick", action="store_true", help="few clients, few steps (the test suite)")
    p.add_argument("--screenshot", default=None, help="also drive the page in headless Chromium and save a PNG here")
    p.add_argument("--out", default=str(REPO_ROOT / "reports" / "bench" / "app.json"))
    args = p.parse_args(argv)
    plan = QUICK if args.quick else FULL
    import importlib.util

    spec = importlib.util.spec_from_file_location("app", REPO_ROOT / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    from gradio_client import Client

    from lab import demo

    out = Path(args.out)
    scratch = Path(tempfile.mkdtemp(prefix="bench-app-"))
    judge_note = None
    if args.judge is None and not repo_path(DEFAULT_JUDGE).is_dir():
        args.judge = str(untrained_judge(scratch / "judge"))
        judge_note = (
            f"{DEFAULT_JUDGE} is missing: timed with an untrained judge of the lab's size "
            f"({JUDGE_SIZE!r}), which costs the same per image as the trained one"
        )
    load_start = os.getloadavg()[0]  # other work on the machine slows every figure here
    server = Server(args.models, args.judge, scratch / "server.log")
    try:
        startup = server.wait_ready()
        client = Client(server.url, verbose=False)
        names = [m.split("=", 1)[0] for m in args.models]
        config = demo.DemoConfig(models=dict(m.split("=", 1) for m in args.models))
        session = demo.DemoSession(replace(config, judge=args.judge) if args.judge else config)
        spans = {name: session.depths(name) for name in names}
        prunable = next((name for name, span in spans.items() if span), None)
        slider = spans[prunable] if prunable else app.NO_DEPTHS  # a model that does not prune ignores the slider
        first, steps, judge_choice = names[0], plan["steps"], session.judge_label
        depth_of = {name: (span[1] if span else slider[1]) for name, span in spans.items()}
        run = {"prompt": args.prompt, "steps": steps, "judge": judge_choice}
        timed_run(client, model=first, depth=depth_of[first], n=plan["n"], **run)  # warm-up
        best = [
            timed_run(client, model=first, depth=depth_of[first], n=plan["best_of"], **run)
            for _ in range(plan["best_of_repeats"])
        ]
        result = {
            "startup_s": startup,
            "plan": plan,
            "models": args.models,
            "judge": best[0]["judge"],
            "judge_note": judge_note,
            "queue_max_size": app.QUEUE_MAX,
            "goals": GOALS,
            "best_of_n": {
                "model": first,
                "n": plan["best_of"],
                "steps": steps,
                "runs": best,
                "seconds": statistics.median(r["seconds"] for r in best),
                "first_candidate_s": statistics.median(r["first_candidate_s"] for r in best),
            },
        }
        if prunable:
            full = spans[prunable][1]
            half = max(1, full // 2)
            rows = {full: [], half: []}
            for depth in rows:
                timed_run(client, model=prunable, depth=depth, n=plan["depth_n"], **run)  # loads or prunes once
            for _ in range(plan["depth_repeats"]):  # interleaved, so drift on a shared machine hits both alike
                for depth in rows:
                    rows[depth].append(timed_run(client, model=prunable, depth=depth, n=plan["depth_n"], **run))
            gen = {d: statistics.median(r["compute_s"]["generate"] for r in runs) for d, runs in rows.items()}
            end = {d: statistics.median(r["seconds"] for r in runs) for d, runs in rows.items()}
            result["depth"] = {
                "model": prunable,
                "n": plan["depth_n"],
                "runs": {str(d): r for d, r in rows.items()},
                "generate_s": {str(d): s for d, s in gen.items()},
                "time_ratio": gen[half] / gen[full],
                "block_ratio": half / full,
                "end_to_end_ratio": end[half] / end[full],
            }
        before = rss_mb(server.process.pid)
        result["load"] = load_test(
            server.url, plan["clients"], plan["deadline_s"], model=first, depth=depth_of[first], n=plan["n"], **run
        ) | {"queue_max_size": app.QUEUE_MAX, "n": plan["n"], "steps": steps}
        result["server"] = {"before_load": before, **rss_mb(server.process.pid)}
        result["machine_load_average_1m"] = {"start": load_start, "end": os.getloadavg()[0]}
        if args.screenshot:
            from lab import browser

            shot = browser.run_in_browser(server.url, args.prompt, plan["best_of"] // 2, screenshot=args.screenshot)
            result["browser"] = {
                "n": plan["best_of"] // 2,
                "first_candidate_s": shot.first_candidate_s,
                "winner_s": shot.winner_s,
                "screenshot": str(shot.screenshot),
            }
    finally:
        server.stop()
    write_json(result, out)
    load = result["load"]
    print(
        f"best-of-{plan['best_of']} on {first}: {result['best_of_n']['seconds']:.2f} s, first candidates "
        f"{result['best_of_n']['first_candidate_s']:.2f} s"
    )
    if "depth" in result:
        d = result["depth"]
        print(f"{d['model']} generate time ratio {d['time_ratio']:.2f} vs block ratio {d['block_ratio']:.2f}")
    print(
        f"load: {load['completed']}/{load['clients']} done, {load['errors']} errors, p50 {load['latency_s'].get('p50', 0):.1f} s, "
        f"p95 {load['latency_s'].get('p95', 0):.1f} s, queue seen {load['max_queue_seen']} (bound {app.QUEUE_MAX}), "
        f"peak RSS {result['server']['peak_rss_mb']:.0f} MiB -> {out}"
    )
