"""CAME / CAME-8bit: parity with came-pytorch, 8-bit state, checkpoints, errors, memory accounting."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from torch import nn

from lab.optim import (
    CAME,
    OPTIMIZERS,
    CAME8bit,
    build_optimizer,
    estimate_state_bytes,
    plan_param,
    state_bytes,
)

CHANNELS, SIDE, BATCH = 16, 4, 8


class TinyNet(nn.Module):
    """A SANA-like mix of every parameter kind: 1x1 convs, a linear, a depthwise 3x3, LayerNorm and RMSNorm.

    fc (144x144 = 20736) and the 1x1 conv up (288x144 = 41472) are over CAME-8bit's 16384 threshold;
    the 1x1 convs inp (144x16) and down (16x288) are under it. Input and output (B, CHANNELS, SIDE, SIDE).
    """

    def __init__(self, channels: int = CHANNELS, hidden: int = 144):
        super().__init__()
        self.inp = nn.Conv2d(channels, hidden, 1)
        self.norm = nn.LayerNorm(hidden)
        self.fc = nn.Linear(hidden, hidden)
        self.up = nn.Conv2d(hidden, 2 * hidden, 1)
        self.dw = nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=1, groups=2 * hidden)
        self.rms = nn.RMSNorm(2 * hidden)
        self.down = nn.Conv2d(2 * hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(self.norm(self.inp(x).permute(0, 2, 3, 1))).permute(0, 3, 1, 2)
        h = self.dw(torch.relu(self.up(h)))
        h = self.rms(h.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.down(h)


def batches(n: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """n fixed regression batches: inputs x and targets tanh(x) reversed over channels."""
    g = torch.Generator().manual_seed(seed)
    xs = [torch.randn(BATCH, CHANNELS, SIDE, SIDE, generator=g) for _ in range(n)]
    return [(x, torch.tanh(x.flip(1))) for x in xs]


def train(model: nn.Module, opt: torch.optim.Optimizer, data) -> list[float]:
    losses = []
    for x, y in data:
        opt.zero_grad()
        loss = (model(x) - y).square().mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def max_rel_diff(a: nn.Module, b: nn.Module) -> float:
    """max over tensors of max|a - b| / max|b|."""
    return max(((p - q).abs().max() / q.abs().max()).item() for p, q in zip(a.parameters(), b.parameters()))


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------------
# parity with came-pytorch


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_came_matches_came_pytorch_for_100_steps(weight_decay):
    # came-pytorch factors every tensor with >= 2 dims over its last two dims (a 1x1 conv thus gets
    # per-element statistics, a depthwise 3x3 per-channel 3x3 factors); `factoring="last-two-dims"`
    # is that rule. Our default ("matrix", SANA's) differs only for conv weights; see the next tests.
    came_pytorch = pytest.importorskip("came_pytorch")
    torch.manual_seed(0)
    ours = TinyNet()
    ref = copy.deepcopy(ours)
    kwargs = dict(lr=1e-3, weight_decay=weight_decay)
    train(ours, CAME(ours.parameters(), factoring="last-two-dims", **kwargs), batches(100))
    train(ref, came_pytorch.CAME(ref.parameters(), **kwargs), batches(100))
    assert max_rel_diff(ours, ref) <= 1e-5  # observed: 0 (bit-identical)


def test_default_came_matches_came_pytorch_on_linears_and_norms():
    came_pytorch = pytest.importorskip("came_pytorch")
    torch.manual_seed(0)
    ours = nn.Sequential(
        nn.Linear(CHANNELS, 64), nn.LayerNorm(64), nn.GELU(), nn.Linear(64, CHANNELS), nn.RMSNorm(CHANNELS)
    )
    ref = copy.deepcopy(ours)
    data = [(x.mean((2, 3)), y.mean((2, 3))) for x, y in batches(100)]
    train(ours, CAME(ours.parameters(), lr=1e-3), data)
    train(ref, came_pytorch.CAME(ref.parameters(), lr=1e-3), data)
    assert max_rel_diff(ours, ref) <= 1e-5


def test_1x1_conv_is_factored_as_its_matrix():
    torch.manual_seed(0)
    conv = nn.Parameter(torch.randn(32, 24, 1, 1))
    linear = nn.Parameter(conv.detach().reshape(32, 24).clone())
    opt_conv, opt_linear = CAME([conv], lr=1e-2), CAME([linear], lr=1e-2)
    for _ in range(5):
        grad = torch.randn(32, 24)
        conv.grad, linear.grad = grad.reshape(32, 24, 1, 1).clone(), grad.clone()
        opt_conv.step()
        opt_linear.step()
    assert torch.equal(conv.detach().reshape(32, 24), linear.detach())
    assert opt_conv.state[conv]["exp_avg_sq_row"].shape == (32,)
    assert opt_conv.state[conv]["exp_avg_sq_col"].shape == (24,)


def test_plan_factors_matrices_and_keeps_other_tensors_full():
    assert plan_param((64, 32)).factored and plan_param((64, 32, 1, 1)).view == (64, 32)
    assert not plan_param((64, 1, 3, 3)).factored  # depthwise conv: unfactored (SANA)
    assert plan_param((64, 1, 3, 3), factoring="last-two-dims").factored  # came-pytorch
    assert not plan_param((64,)).factored
    assert plan_param((200, 100), min_8bit_size=16384).quantized
    assert not plan_param((128, 128), min_8bit_size=16384).quantized  # 16384 is not more than 16384
    assert not plan_param((64, 1, 30, 30), min_8bit_size=16384).quantized  # not a matrix
    assert plan_param((8, 8), torch.bfloat16).dtype == torch.float32


# ---------------------------------------------------------------------------------------------
# CAME-8bit


def test_came8bit_keeps_uint8_m_for_large_matrices_only():
    model = TinyNet()
    opt = CAME8bit(model.parameters(), lr=1e-3)
    train(model, opt, batches(2))
    quantized = {"fc.weight", "up.weight"}
    for name, p in model.named_parameters():
        state = opt.state[p]
        if name in quantized:
            assert state["exp_avg_codes"].dtype == torch.uint8 and state["exp_avg_codes"].numel() == p.numel()
            assert state["exp_avg_absmax"].shape == (-(-p.numel() // 256),)
            assert "exp_avg" not in state
        else:
            assert state["exp_avg"].dtype == torch.float32 and "exp_avg_codes" not in state
        assert all(v.dtype != torch.uint8 for k, v in state.items() if torch.is_tensor(v) and k != "exp_avg_codes")
    qmaps = {opt.state[p]["exp_avg_qmap"].data_ptr() for n, p in model.named_parameters() if n in quantized}
    assert len(qmaps) == 1  # one shared code map


def test_came8bit_loss_tracks_came():
    torch.manual_seed(0)
    model = TinyNet()
    model8 = copy.deepcopy(model)
    data = batches(40) * 3
    losses = train(model, CAME(model.parameters(), lr=1e-3), data)
    losses8 = train(model8, CAME8bit(model8.parameters(), lr=1e-3), data)
    tail, tail8 = sum(losses[-20:]) / 20, sum(losses8[-20:]) / 20
    assert tail < 0.5 * losses[0]  # it learns
    assert abs(tail8 - tail) / tail < 0.03


def test_came8bit_equals_came_when_nothing_is_large_enough():
    torch.manual_seed(0)
    model = TinyNet()
    model8 = copy.deepcopy(model)
    train(model, CAME(model.parameters(), lr=1e-3), batches(5))
    train(model8, CAME8bit(model8.parameters(), lr=1e-3, min_8bit_size=10**9), batches(5))
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), model8.parameters()))


# ---------------------------------------------------------------------------------------------
# checkpoints


@pytest.mark.parametrize("cls", [CAME, CAME8bit])
def test_save_and_load_mid_training_gives_identical_next_steps(cls):
    torch.manual_seed(0)
    model = TinyNet()
    opt = cls(model.parameters(), lr=1e-3, weight_decay=0.01)
    data = batches(8)
    train(model, opt, data[:5])
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer)
    resumed = TinyNet()
    resumed.load_state_dict(saved["model"])
    resumed_opt = cls(resumed.parameters(), lr=1.0)  # hyper-parameters come from the checkpoint
    resumed_opt.load_state_dict(saved["opt"])
    resumed_opt.load_state_dict(resumed_opt.state_dict())  # accelerate's prepare() reloads once more
    train(model, opt, data[5:])
    train(resumed, resumed_opt, data[5:])
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), resumed.parameters()))
    for p, q in zip(model.parameters(), resumed.parameters()):
        a, b = opt.state[p], resumed_opt.state[q]
        assert a.keys() == b.keys() and a["step"] == b["step"] == 8
        assert all(torch.equal(a[k], b[k]) for k in a if torch.is_tensor(a[k]))


def test_bf16_parameters_keep_fp32_state_through_a_checkpoint():
    model = nn.Linear(256, 128).to(torch.bfloat16)
    opt = CAME8bit(model.parameters(), lr=1e-3)
    train(model, opt, [(torch.randn(4, 256, dtype=torch.bfloat16), torch.randn(4, 128, dtype=torch.bfloat16))])
    clone = CAME8bit(model.parameters(), lr=1e-3)
    clone.load_state_dict(copy.deepcopy(opt.state_dict()))  # torch alone would cast state to bf16
    for p in model.parameters():
        for key, value in clone.state[p].items():
            if torch.is_tensor(value):
                assert value.dtype == opt.state[p][key].dtype and value.dtype != torch.bfloat16
                assert torch.equal(value, opt.state[p][key])


def test_came8bit_state_dict_round_trips_codes_and_absmax_exactly():
    model = TinyNet()
    opt = CAME8bit(model.parameters(), lr=1e-3)
    train(model, opt, batches(3))
    clone = CAME8bit(model.parameters(), lr=1e-3)
    clone.load_state_dict(copy.deepcopy(opt.state_dict()))
    p = model.fc.weight
    assert torch.equal(clone.state[p]["exp_avg_codes"], opt.state[p]["exp_avg_codes"])
    assert torch.equal(clone.state[p]["exp_avg_absmax"], opt.state[p]["exp_avg_absmax"])
    assert clone.state[p]["exp_avg_codes"].data_ptr() != opt.state[p]["exp_avg_codes"].data_ptr()


@pytest.mark.parametrize(
    ("source", "target"),
    [("adamw", "came8bit"), ("came", "came8bit"), ("came8bit", "came"), ("adamw8bit", "came")],
)
def test_loading_another_optimizers_state_raises(source, target):
    model = TinyNet()
    opt = build_optimizer(source, model.parameters(), lr=1e-3)
    train(model, opt, batches(1))
    with pytest.raises(ValueError, match="cannot load a state dict saved by"):
        build_optimizer(target, model.parameters(), lr=1e-3).load_state_dict(opt.state_dict())


def test_loading_state_saved_with_other_8bit_settings_raises():
    model = TinyNet()
    opt = CAME8bit(model.parameters(), lr=1e-3)
    train(model, opt, batches(1))
    saved = opt.state_dict()
    saved["param_groups"][0]["min_8bit_size"] = 10**9  # says fp32 m, but the state holds codes
    with pytest.raises(ValueError, match="state of parameter"):
        CAME8bit(model.parameters()).load_state_dict(saved)


# ---------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [
        (dict(lr=-1.0), "lr=-1.0"),
        (dict(lr=float("nan")), "lr=nan"),
        (dict(betas=(0.9, 0.999)), "betas=(0.9, 0.999)"),
        (dict(betas=(0.9, 1.5, 0.9999)), "betas=(0.9, 1.5, 0.9999)"),
        (dict(eps=(-1.0, 1e-16)), "eps=(-1.0, 1e-16)"),
        (dict(clip_threshold=0.0), "clip_threshold=0.0"),
        (dict(weight_decay=-0.1), "weight_decay=-0.1"),
        (dict(factoring="rows"), "factoring='rows'"),
    ],
)
@pytest.mark.parametrize("cls", [CAME, CAME8bit])
def test_invalid_hyperparameters_raise_naming_the_value(cls, kwargs, bad):
    with pytest.raises(ValueError, match=f"invalid {bad.split('=')[0]}=") as err:
        cls(nn.Linear(2, 2).parameters(), **kwargs)
    assert bad in str(err.value) and "expected" in str(err.value)


@pytest.mark.parametrize(
    ("kwargs", "bad"), [(dict(min_8bit_size=-1), "min_8bit_size=-1"), (dict(blocksize=100), "blocksize=100")]
)
def test_invalid_8bit_settings_raise_naming_the_value(kwargs, bad):
    with pytest.raises(ValueError, match=bad):
        CAME8bit(nn.Linear(2, 2).parameters(), **kwargs)


def test_invalid_param_group_raises():
    model = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="lr=-0.5"):
        CAME([{"params": [model.weight]}, {"params": [model.bias], "lr": -0.5}])


@pytest.mark.parametrize("cls", [CAME, CAME8bit])
def test_sparse_gradients_raise(cls):
    embedding = nn.Embedding(10, 4, sparse=True)
    embedding(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match="sparse gradients"):
        cls(embedding.parameters(), lr=1e-3).step()


def test_unknown_optimizer_name_lists_accepted_names():
    with pytest.raises(ValueError, match="'sgd'.*adamw.*adamw8bit.*came.*came8bit"):
        build_optimizer("sgd", nn.Linear(2, 2).parameters(), lr=1e-3)
    with pytest.raises(ValueError, match="'sgd'"):
        estimate_state_bytes(nn.Linear(2, 2), "sgd")


def test_step_returns_closure_loss():
    model = nn.Linear(2, 1)
    opt = CAME(model.parameters(), lr=1e-3)

    def closure():
        opt.zero_grad()
        loss = model(torch.ones(1, 2)).sum()
        loss.backward()
        return loss

    assert torch.is_tensor(opt.step(closure))


# ---------------------------------------------------------------------------------------------
# memory accounting


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_estimate_on_meta_equals_real_state_bytes(name):
    model = TinyNet()
    opt = build_optimizer(name, model.parameters(), lr=1e-3)
    train(model, opt, batches(1))
    assert estimate_state_bytes(TinyNet().to("meta"), name) == state_bytes(opt) > 0


def test_state_bytes_counts_8bit_m_as_one_byte_per_element():
    model = nn.Linear(256, 256, bias=False)  # 65536 elements: m is 8-bit
    opt = CAME8bit(model.parameters(), lr=1e-3)
    train(model, opt, [(torch.randn(4, 256), torch.randn(4, 256))])
    n = model.weight.numel()
    factored = 4 * 256 * 4  # rows and columns of the second moment and of the instability, fp32
    assert state_bytes(opt) == n + (n // 256) * 4 + 256 * 4 + factored


@pytest.mark.parametrize("name", ["came8bit", "adamw8bit"])
def test_estimate_equals_real_state_bytes_on_a_sana_transformer(name):
    from lab.model import build_transformer

    model = build_transformer("tiny")
    opt = build_optimizer(name, model.parameters(), lr=1e-3, min_8bit_size=1024)  # tiny: lower the threshold
    c = model.config
    latents = torch.randn(2, c.in_channels, c.sample_size, c.sample_size)
    text, mask = torch.randn(2, 4, c.caption_channels), torch.ones(2, 4, dtype=torch.long)
    out = model(latents, encoder_hidden_states=text, encoder_attention_mask=mask, timestep=torch.tensor([10.0, 500.0]))
    out.sample.square().mean().backward()
    opt.step()
    meta = build_transformer("tiny", device="meta")
    assert estimate_state_bytes(meta, name, min_8bit_size=1024) == state_bytes(opt)
