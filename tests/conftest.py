"""Shared tiny fixtures: every model here is built from a config in well under a second."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Tests run two at a time (pytest -n 2) on two cores; subprocesses and notebook kernels inherit
# this. Oversubscribed OpenMP threads spin against each other and run many times slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest  # noqa: E402
import torch  # noqa: E402


def pytest_configure(config):
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_vae_dir(tmp_path_factory):
    from lab.model import build_vae

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("vae") / "vae"
    build_vae("tiny").save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_pipeline_dir(tmp_path_factory, tiny_vae_dir):
    """An untrained tiny lab SanaPipeline saved with save_pretrained."""
    from diffusers import AutoencoderDC

    from lab.model import build_pipeline, quiet_hub_logging

    quiet_hub_logging()
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("pipe") / "tiny"
    build_pipeline("tiny", vae=AutoencoderDC.from_pretrained(tiny_vae_dir)).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_text_encoder_dir(tmp_path_factory):
    """A pretrained lab text encoder of the tiny transformers' caption width (a few steps)."""
    from lab.text_encoder import TextEncoderConfig, pretrain_text_encoder

    path = tmp_path_factory.mktemp("text_encoder") / "encoder"
    pretrain_text_encoder(TextEncoderConfig(hidden_size=16, steps=3, batch_size=8, eval_captions=16), path, False)
    return path


@pytest.fixture
def tiny_pipeline(tiny_pipeline_dir):
    from lab.model import load_pipeline

    return load_pipeline(tiny_pipeline_dir)


@pytest.fixture
def run_lab(capsys):
    """Runs `lab ARGV` in this process. Returns (exit code, stdout, stderr)."""
    from lab.cli import main

    def run(*argv) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            main([str(a) for a in argv])
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        out, err = capsys.readouterr()
        return code, out, err

    return run


def free_port() -> int:
    """A TCP port nobody listens on now: two `accelerate launch` tests running side by side (pytest -n 2)
    would otherwise both rendezvous on the default port 29500."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_two_processes(script: str, *args: str):
    """Runs tests/`script` ARGS as 2 processes under `accelerate launch` (one thread each) and returns
    the CompletedProcess. `accelerate launch --cpu` starts a single process in accelerate 1.x;
    `--multi_gpu` starts two through torchrun, and Accelerator(cpu=True) joins them over gloo."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    tests = Path(__file__).parent
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--main_process_port", str(free_port()), "--mixed_precision", "no",
               "--dynamo_backend", "no", str(tests / script), *args]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tests.parent,
                          env=os.environ | {"OMP_NUM_THREADS": "1"})  # fmt: skip
