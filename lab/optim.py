"""CAME and SANA 1.5's CAME-8bit optimizers, what their state costs in bytes, and one builder.

    opt = build_optimizer("came8bit", model.parameters(), lr=2e-5)
    state_bytes(opt)                                    # bytes held by the optimizer's state now
    estimate_state_bytes(meta_model, "came8bit")         # bytes it would hold, allocating nothing

CAME (Luo et al. 2023, Algorithm 1), per parameter with gradient g, no bias correction:
  1. second moment of g^2 + eps1 as row/column EMAs (beta2): V = r c^T / mean(r);  u = g / sqrt(V)
  2. clip: u <- u / max(1, RMS(u) / clip_threshold)
  3. first moment: m <- beta1 m + (1 - beta1) u
  4. instability (u - m)^2 + eps2 as row/column EMAs (beta3), factored the same way -> S
  5. p <- p - lr wd p - lr m / sqrt(S)     (decoupled weight decay)
Parameters that are not factored keep a full second moment and step by m directly (no instability).

CAME-8bit (SANA 1.5, "memory-efficient CAME-8bit") stores only m of large matrices in 8 bits, block-wise with
bitsandbytes' signed dynamic map; every factored statistic stays fp32.

Which parameters are factored, and which are 8-bit, is decided by one function, `plan_param`,
used both by the optimizers and by `estimate_state_bytes`, so the two cannot disagree.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

OPTIMIZERS = ("adamw", "adamw8bit", "came", "came8bit")

# How tensors are viewed as matrices for the factored statistics:
#   "matrix": SANA 1.5's rule (its CAMEWrapper). Linear weights (out, in) and 1x1 convs
#             (out, in, 1, 1) are factored as (out, in) matrices; everything else (biases, norms,
#             k x k convs such as the depthwise 3x3) keeps an unfactored second moment.
#   "last-two-dims": came-pytorch's (and Adafactor's) rule. Every tensor with >= 2 dims is factored
#             over its last two dims, batched over the leading ones: a 1x1 conv then gets row and
#             column statistics as large as the weight itself, which is why it is not the default.
FACTORINGS = ("matrix", "last-two-dims")

QMAP_SIZE = 2**8  # entries of bitsandbytes' 8-bit dynamic code map
BNB_BLOCKSIZES = (64, 128, 256, 512, 1024, 2048, 4096)  # block sizes quantize_blockwise accepts
BNB_ADAM_BLOCKSIZE = 256  # bitsandbytes' 8-bit Adam quantises its state in blocks of 256 (fixed)
SHARED_STATE = ("exp_avg_qmap",)  # state entries that are one tensor shared by all parameters

# CAME-8bit defaults (SANA 1.5): m of matrices with more than 16384 elements is 8-bit, in blocks of 256
MIN_8BIT_SIZE = 16384
BLOCKSIZE = 256


# ---------------------------------------------------------------------------------------------
# The per-parameter decision, shared by the optimizers and the estimator


def is_matrix(shape: Iterable[int]) -> bool:
    """True for a linear weight (out, in) or a 1x1 conv weight (out, in, 1, 1)."""
    shape = tuple(shape)
    return len(shape) == 2 or (len(shape) == 4 and shape[2:] == (1, 1))


@dataclass(frozen=True)
class ParamPlan:
    """How CAME keeps the state of one parameter."""

    view: tuple[int, ...]  # shape the gradient is viewed as; factored statistics average its last two dims
    factored: bool  # second moment and instability kept as row/column EMAs of `view`
    quantized: bool  # m stored as uint8 codes + one fp32 absmax per block
    dtype: torch.dtype  # dtype of the fp state and of the update arithmetic
    blocksize: int  # elements per absmax block (when quantized)

    def state_spec(self) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        """Every state tensor this parameter gets: name -> (shape, dtype). The step count is an int."""
        spec: dict[str, tuple[tuple[int, ...], torch.dtype]] = {}
        if self.quantized:
            blocks = -(-math.prod(self.view) // self.blocksize)
            spec["exp_avg_codes"] = (self.view, torch.uint8)
            spec["exp_avg_absmax"] = ((blocks,), torch.float32)
            spec["exp_avg_qmap"] = ((QMAP_SIZE,), torch.float32)
        else:
            spec["exp_avg"] = (self.view, self.dtype)
        if self.factored:
            rows, cols = self.view[:-1], self.view[:-2] + self.view[-1:]
            for stat in ("sq", "res"):
                spec[f"exp_avg_{stat}_row"] = (rows, self.dtype)
                spec[f"exp_avg_{stat}_col"] = (cols, self.dtype)
        else:
            spec["exp_avg_sq"] = (self.view, self.dtype)
        return spec


def plan_param(
    shape: Iterable[int],
    dtype: torch.dtype = torch.float32,
    *,
    factoring: str = "matrix",
    min_8bit_size: int | None = None,
    blocksize: int = BLOCKSIZE,
) -> ParamPlan:
    """Decides, for a parameter of `shape` and `dtype`, whether CAME factors it and stores m in 8 bits.

    Args:
        factoring: one of `FACTORINGS` (see there).
        min_8bit_size: matrices with more elements than this keep m in 8 bits; None: nothing does.
        blocksize: elements per absmax block of the 8-bit m.
    Returns:
        the `ParamPlan`; state is fp32 for fp16/bf16 parameters (as in came-pytorch), else `dtype`.
    """
    shape = tuple(shape)
    if factoring == "matrix":
        factored = is_matrix(shape)
        view = shape[:2] if factored else shape
    elif factoring == "last-two-dims":
        factored, view = len(shape) >= 2, shape
    else:
        raise ValueError(f"unknown factoring {factoring!r}; expected one of {FACTORINGS}")
    quantized = min_8bit_size is not None and is_matrix(shape) and math.prod(shape) > min_8bit_size
    state_dtype = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    return ParamPlan(view, factored, quantized, state_dtype, blocksize)


# ---------------------------------------------------------------------------------------------
# CAME


def _rms(x: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(x) / math.sqrt(x.numel())


def _factored_rsqrt(row: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
    """1 / sqrt(r c^T / mean(r)) from row EMAs (..., R) and column EMAs (..., C); returns (..., R, C)."""
    r = (row / row.mean(dim=-1, keepdim=True)).rsqrt_()
    return r.unsqueeze(-1) * col.rsqrt().unsqueeze(-2)


def _check_range(name: str, value, ok: bool, accepted: str) -> None:
    if not ok:
        raise ValueError(f"invalid {name}={value!r}; expected {accepted}")


class CAME(torch.optim.Optimizer):
    """CAME (Confidence-guided Adaptive Memory Efficient optimisation), fp32 state.

    Args:
        params: parameters or parameter groups (dicts that may override any keyword below).
        lr: learning rate (SANA 1.5 fine-tunes with 2e-5).
        betas: EMA rates of (m, second moment, instability), each in [0, 1).
        eps: (eps1, eps2) added to g^2 and to the instability, each >= 0.
        clip_threshold: largest RMS of the normalised update u, > 0.
        weight_decay: decoupled weight decay (scaled by lr), >= 0.
        factoring: how tensors are viewed as matrices, one of `FACTORINGS`.

    With `factoring="last-two-dims"` the steps are bit-identical to came-pytorch 0.1.3's `CAME`
    (which also keeps an unused `RMS` of each parameter in its state; we do not). The default,
    SANA's rule, differs from it only for conv weights.
    """

    def __init__(
        self,
        params,
        lr: float = 2e-5,
        betas: tuple[float, float, float] = (0.9, 0.999, 0.9999),
        eps: tuple[float, float] = (1e-30, 1e-16),
        clip_threshold: float = 1.0,
        weight_decay: float = 0.0,
        *,
        factoring: str = "matrix",
    ):
        defaults = dict(
            lr=lr,
            betas=tuple(betas) if isinstance(betas, (tuple, list)) else betas,
            eps=tuple(eps) if isinstance(eps, (tuple, list)) else eps,
            clip_threshold=clip_threshold,
            weight_decay=weight_decay,
            factoring=factoring,
            **self._extra_defaults(),
        )
        # torch adds its own keys to `defaults` on load (e.g. "differentiable"): check saved groups
        # against this optimizer's hyper-parameters only
        self._hyperparameters = tuple(defaults)
        super().__init__(params, defaults)

    def _extra_defaults(self) -> dict:
        """Further per-group settings of a subclass (set before the groups are checked)."""
        return {}

    # -- hyper-parameters ---------------------------------------------------------------------

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        self._check_group(self.param_groups[-1])

    def _check_group(self, group: dict) -> None:
        lr, betas, eps = group["lr"], group["betas"], group["eps"]
        _check_range("lr", lr, isinstance(lr, (int, float)) and math.isfinite(lr) and lr >= 0, "a finite number >= 0")
        betas_ok = isinstance(betas, tuple) and len(betas) == 3 and all(0.0 <= b < 1.0 for b in betas)
        _check_range("betas", betas, betas_ok, "a tuple of three numbers in [0, 1)")
        eps_ok = isinstance(eps, tuple) and len(eps) == 2 and all(e >= 0.0 for e in eps)
        _check_range("eps", eps, eps_ok, "a tuple of two numbers >= 0")
        _check_range("clip_threshold", group["clip_threshold"], group["clip_threshold"] > 0, "a number > 0")
        _check_range("weight_decay", group["weight_decay"], group["weight_decay"] >= 0, "a number >= 0")
        _check_range("factoring", group["factoring"], group["factoring"] in FACTORINGS, f"one of {FACTORINGS}")

    def _plan(self, p: torch.Tensor, group: dict) -> ParamPlan:
        return plan_param(p.shape, p.dtype, factoring=group["factoring"])

    # -- first moment storage (CAME8bit overrides these three) ---------------------------------

    def _init_state(self, state: dict, p: torch.Tensor, plan: ParamPlan) -> None:
        state["step"] = 0
        for name, (shape, dtype) in plan.state_spec().items():
            if name not in SHARED_STATE:
                state[name] = torch.zeros(shape, dtype=dtype, device=p.device)

    def _read_exp_avg(self, state: dict, plan: ParamPlan) -> torch.Tensor:
        """m of shape `plan.view`, in `plan.dtype`; updated in place by the step."""
        return state["exp_avg"]

    def _write_exp_avg(self, state: dict, plan: ParamPlan, exp_avg: torch.Tensor) -> None:
        pass  # fp32 m was updated in place

    # -- the update ------------------------------------------------------------------------------

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None):
        """One CAME update of every parameter that has a gradient; returns `closure()` if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError(
                        f"{type(self).__name__} does not support sparse gradients (parameter of shape "
                        f"{tuple(p.shape)}); use dense gradients, e.g. nn.Embedding(sparse=False)"
                    )
                plan = self._plan(p, group)
                state = self.state[p]
                if not state:
                    self._init_state(state, p, plan)
                self._update(p, state, plan, group)
        return loss

    def _update(self, p: torch.Tensor, state: dict, plan: ParamPlan, group: dict) -> None:
        beta1, beta2, beta3 = group["betas"]
        eps1, eps2 = group["eps"]
        lr, weight_decay = group["lr"], group["weight_decay"]
        grad = p.grad.to(plan.dtype).reshape(plan.view)
        state["step"] += 1

        # 1. second moment of g^2 + eps1, factored (r c^T / mean r) or full; u = g / sqrt(V)
        sq = grad.square().add_(eps1)
        if plan.factored:
            row, col = state["exp_avg_sq_row"], state["exp_avg_sq_col"]
            row.mul_(beta2).add_(sq.mean(dim=-1), alpha=1 - beta2)
            col.mul_(beta2).add_(sq.mean(dim=-2), alpha=1 - beta2)
            update = _factored_rsqrt(row, col).mul_(grad)
        else:
            exp_avg_sq = state["exp_avg_sq"]
            exp_avg_sq.mul_(beta2).add_(sq, alpha=1 - beta2)
            update = exp_avg_sq.rsqrt().mul_(grad)
        del sq

        # 2. clip the normalised update to RMS <= clip_threshold
        update.div_((_rms(update) / group["clip_threshold"]).clamp_(min=1.0))

        # 3. first moment
        exp_avg = self._read_exp_avg(state, plan)
        exp_avg.mul_(beta1).add_(update, alpha=1 - beta1)

        # 4. confidence: instability (u - m)^2 + eps2, factored the same way; step = m / sqrt(S)
        if plan.factored:
            res = update.sub_(exp_avg).square_().add_(eps2)
            row, col = state["exp_avg_res_row"], state["exp_avg_res_col"]
            row.mul_(beta3).add_(res.mean(dim=-1), alpha=1 - beta3)
            col.mul_(beta3).add_(res.mean(dim=-2), alpha=1 - beta3)
            update = _factored_rsqrt(row, col).mul_(exp_avg)
        else:
            update = exp_avg
        self._write_exp_avg(state, plan, exp_avg)

        # 5. decoupled weight decay, then the step (written as came-pytorch rounds it: bit-identical)
        if weight_decay != 0:
            p.add_(p, alpha=-lr * weight_decay)
        p.sub_(update.reshape(p.shape).to(p.dtype) * lr)

    # -- checkpoints -----------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """torch's optimizer state dict, tagged with the optimizer's class name."""
        return {**super().state_dict(), "optimizer": type(self).__name__}

    def load_state_dict(self, state_dict: dict) -> None:
        """Loads a state dict saved by the same optimizer class; state keeps the plan's dtypes exactly.

        Raises:
            ValueError: the state dict comes from another optimizer (e.g. AdamW's, or CAME's into
                CAME8bit), or its per-parameter state does not match what this optimizer keeps.
        """
        name = type(self).__name__
        saved_name = state_dict.get("optimizer")
        if saved_name != name:
            raise ValueError(
                f"cannot load a state dict saved by {saved_name or 'an untagged optimizer (e.g. torch AdamW)'} "
                f"into {name}; expected one saved by {name}.state_dict()"
            )
        saved_groups = state_dict["param_groups"]
        for i, saved in enumerate(saved_groups):
            missing = sorted(set(self._hyperparameters) - set(saved))
            if missing:
                raise ValueError(f"saved param group {i} lacks {missing}; was it saved by {name}?")
            self._check_group(saved)
        params = [p for g in self.param_groups for p in g["params"]]
        saved_ids = [i for g in saved_groups for i in g["params"]]
        saved_group_of = [g for g in saved_groups for _ in g["params"]]
        plans = {}
        for p, pid, group in zip(params, saved_ids, saved_group_of):
            saved = state_dict["state"].get(pid)
            if saved is None:
                continue
            plan = self._plan(p, group)
            expected = {k: (tuple(s), d) for k, (s, d) in plan.state_spec().items()}
            found = {k: (tuple(v.shape), v.dtype) for k, v in saved.items() if torch.is_tensor(v)}
            if found != expected or not isinstance(saved.get("step"), int):
                raise ValueError(
                    f"state of parameter {pid} (shape {tuple(p.shape)}) is {found}, but {name} keeps "
                    f"{expected} plus an int 'step'; was it saved by another optimizer or with other settings?"
                )
            plans[pid] = (p, plan)
        super().load_state_dict(state_dict)
        # torch casts floating state to each parameter's dtype; restore the plan's dtypes (fp32 state
        # for bf16 parameters) from the saved tensors, copying so the loaded state is our own.
        for pid, (p, plan) in plans.items():
            saved, state = state_dict["state"][pid], self.state[p]
            for key, (_, dtype) in plan.state_spec().items():
                state[key] = saved[key].to(device=p.device, dtype=dtype, copy=True)
            self._after_load(state, p)

    def _after_load(self, state: dict, p: torch.Tensor) -> None:
        """Hook for subclasses, run on each parameter's state after loading."""


# ---------------------------------------------------------------------------------------------
# CAME-8bit


class CAME8bit(CAME):
    """CAME with the first moment m of large matrices stored in 8 bits (SANA 1.5's CAME-8bit).

    m of a linear weight or 1x1 conv with more than `min_8bit_size` elements is kept as uint8 codes
    of bitsandbytes' signed dynamic map plus one fp32 absmax per `blocksize` elements (block-wise
    quantisation); it is dequantised, updated in fp32 and requantised every step. All other state is
    exactly as in `CAME`. Device-agnostic: bitsandbytes has CPU and CUDA kernels (tested here on CPU).

    Args:
        min_8bit_size: matrices with more elements than this keep m in 8 bits, >= 0.
        blocksize: elements per absmax block, one of `BNB_BLOCKSIZES`.
        (others as `CAME`)
    """

    def __init__(self, params, *args, min_8bit_size: int = MIN_8BIT_SIZE, blocksize: int = BLOCKSIZE, **kwargs):
        self._qmaps: dict[torch.device, torch.Tensor] = {}
        self._8bit_defaults = dict(min_8bit_size=min_8bit_size, blocksize=blocksize)
        super().__init__(params, *args, **kwargs)

    def _extra_defaults(self) -> dict:
        return self._8bit_defaults

    def _check_group(self, group: dict) -> None:
        super()._check_group(group)
        size, blocksize = group["min_8bit_size"], group["blocksize"]
        _check_range("min_8bit_size", size, isinstance(size, int) and size >= 0, "an int >= 0")
        _check_range("blocksize", blocksize, blocksize in BNB_BLOCKSIZES, f"one of {BNB_BLOCKSIZES}")

    def _plan(self, p: torch.Tensor, group: dict) -> ParamPlan:
        settings = {k: group[k] for k in ("factoring", "min_8bit_size", "blocksize")}
        return plan_param(p.shape, p.dtype, **settings)

    def _qmap(self, device: torch.device) -> torch.Tensor:
        """The signed dynamic map (QMAP_SIZE,) on `device`, one tensor shared by every parameter."""
        if device not in self._qmaps:
            from bitsandbytes.functional import create_dynamic_map

            self._qmaps[device] = create_dynamic_map(signed=True).to(device)
        return self._qmaps[device]

    def _init_state(self, state: dict, p: torch.Tensor, plan: ParamPlan) -> None:
        super()._init_state(state, p, plan)
        if plan.quantized:
            state["exp_avg_qmap"] = self._qmap(p.device)

    def _read_exp_avg(self, state: dict, plan: ParamPlan) -> torch.Tensor:
        if not plan.quantized:
            return state["exp_avg"]
        from bitsandbytes.functional import dequantize_blockwise

        m = dequantize_blockwise(
            state["exp_avg_codes"], absmax=state["exp_avg_absmax"], code=state["exp_avg_qmap"], blocksize=plan.blocksize
        )
        return m.to(plan.dtype)

    def _write_exp_avg(self, state: dict, plan: ParamPlan, exp_avg: torch.Tensor) -> None:
        if not plan.quantized:
            return
        from bitsandbytes.functional import quantize_blockwise

        codes, quant_state = quantize_blockwise(exp_avg.float(), code=state["exp_avg_qmap"], blocksize=plan.blocksize)
        state["exp_avg_codes"], state["exp_avg_absmax"] = codes, quant_state.absmax

    def _after_load(self, state: dict, p: torch.Tensor) -> None:
        if "exp_avg_qmap" not in state:
            return
        qmap = self._qmap(p.device)
        if not torch.equal(state["exp_avg_qmap"], qmap):
            raise ValueError(
                "the saved 8-bit m was quantised with another code map than bitsandbytes' signed dynamic map"
            )
        state["exp_avg_qmap"] = qmap  # share one map again


# ---------------------------------------------------------------------------------------------
# Memory accounting and the builder


def state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of every tensor in `optimizer.state` (numel x element size); a shared tensor counts once.

    Works for any torch optimizer, bitsandbytes' 8-bit ones included (their code maps are shared).
    """
    seen, total = set(), 0
    for state in optimizer.state.values():
        for value in state.values():
            if not torch.is_tensor(value):
                continue
            key = (value.device, value.data_ptr(), value.dtype, tuple(value.shape))
            if key not in seen:
                seen.add(key)
                total += value.numel() * value.element_size()
    return total


def _trainable(model_or_params) -> list:
    """Trainable parameters of a module, or the parameters / parameter groups given, as a list."""
    if isinstance(model_or_params, nn.Module):
        return [p for p in model_or_params.parameters() if p.requires_grad]
    return list(model_or_params)


def estimate_state_bytes(model_or_params, name: str, **kwargs) -> int:
    """Bytes of optimizer state that `build_optimizer(name, ...)` would hold after its first step.

    Builds the optimizer over the parameters (which allocates no state) and applies the rule each
    optimizer uses to create state, reading only shapes and dtypes: a model on the `meta` device
    works. Assumes every trainable parameter gets a gradient (state appears at a first update).

    Args:
        model_or_params: an `nn.Module`, or parameters / parameter groups.
        name: one of `OPTIMIZERS`.
        kwargs: further optimizer keywords (those that shape the state: amsgrad, min_8bit_size,
            factoring, blocksize).
    Returns:
        bytes, as `state_bytes` would count them.
    """
    optimizer = build_optimizer(name, _trainable(model_or_params), lr=0.0, **kwargs)
    params = [(p, g) for g in optimizer.param_groups for p in g["params"] if p.requires_grad]
    if name == "adamw":
        # torch AdamW: exp_avg, exp_avg_sq (and max_exp_avg_sq) like the parameter; a scalar step tensor
        step = (torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32).itemsize
        return sum((3 if g["amsgrad"] else 2) * p.numel() * p.element_size() + step for p, g in params)
    if name == "adamw8bit":
        # bitsandbytes Optimizer2State.init_state: fp32 state1/state2 under min_8bit_size, else uint8
        # codes + one fp32 absmax per 256 elements each, and two shared code maps (signed, unsigned)
        min_size = optimizer.args.min_8bit_size
        total, any_8bit = 0, False
        for p, _ in params:
            n = p.numel()
            if n < min_size:
                total += 2 * n * torch.float32.itemsize
            else:
                any_8bit = True
                total += 2 * (n * torch.uint8.itemsize + -(-n // BNB_ADAM_BLOCKSIZE) * torch.float32.itemsize)
        return total + (2 * QMAP_SIZE * torch.float32.itemsize if any_8bit else 0)
    # CAME, CAME8bit: the optimizer's own per-parameter plan
    total, shared = 0, {}
    for p, g in params:
        for key, (shape, dtype) in optimizer._plan(p, g).state_spec().items():
            nbytes = math.prod(shape) * dtype.itemsize
            if key in SHARED_STATE:
                shared[key] = nbytes
            else:
                total += nbytes
    return total + sum(shared.values())


def build_optimizer(name: str, params, lr: float, weight_decay: float = 0.0, **kwargs) -> torch.optim.Optimizer:
    """The optimizer `name` (one of `OPTIMIZERS`) over `params`; `kwargs` go to its constructor.

    `adamw` is torch's AdamW, `adamw8bit` bitsandbytes' AdamW8bit (it runs on CPU too with
    bitsandbytes 0.50), `came` and `came8bit` are this module's.
    """
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, **kwargs)
    if name == "adamw8bit":
        import bitsandbytes as bnb

        return bnb.optim.AdamW8bit(params, lr=lr, weight_decay=weight_decay, **kwargs)
    if name == "came":
        return CAME(params, lr=lr, weight_decay=weight_decay, **kwargs)
    if name == "came8bit":
        return CAME8bit(params, lr=lr, weight_decay=weight_decay, **kwargs)
    raise ValueError(f"unknown optimizer {name!r}; expected one of {OPTIMIZERS}")
