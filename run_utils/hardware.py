"""Where and how a run computes: CPU or CUDA, float32 or bfloat16, and the CPU's memory allocator."""

import ctypes
import os
import sys

import torch

from run_utils.cli import UsageError

EMULATED_BF16 = "MEDE_EMULATED_BF16"  # =1: --bf16 even where bf16 is emulated (very slow; to study its numbers)


def choose_device(args) -> tuple[torch.device, str]:
    """CUDA when it is there and --cuda (the default) asks for it, else the CPU; and how the run's
    first line says so."""
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")
    note = str(device) + ("" if device.type == "cuda" else " (no CUDA GPU found)" if args.cuda else " (--no-cuda)")
    return device, note


def autocast(device: torch.device, precision: str):
    """The context of the updates and of acting: bfloat16 autocast in a bf16 run, else nothing. Only
    the hidden layers' matrix products run in bf16: every network's output layer and all that follows
    (log-probabilities, losses) are float32. No cache of bf16 weight copies: an update steps its actor
    more than once (policy_frequency), each time anew."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16", cache_enabled=False)


def in_precision(act, device: torch.device, precision: str):
    """`act` (a policy function) run under `autocast`, as during training."""
    def act_in_precision(obs, z):
        with autocast(device, precision):
            return act(obs, z)
    return act_in_precision


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bfloat16 matrix products natively: a CUDA GPU that supports it, or
    a CPU with AVX512-BF16 or AMX. Elsewhere torch emulates them, 10-25 times slower than float32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    cpu = getattr(torch, "cpu", None)
    return any(getattr(cpu, check, lambda: False)() for check in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return "this CPU"


def choose_precision(args, device: torch.device, saved: str | None) -> str:
    """"bfloat16" or "float32": what --bf16 asks for where the device has native bf16 (or
    MEDE_EMULATED_BF16=1 forces it); a resumed run keeps the precision it was trained in."""
    native = native_bf16(device) or os.environ.get(EMULATED_BF16) == "1"
    if saved is not None:
        if saved == "bfloat16" and not native:
            raise UsageError(f"{args.resume} trains in bfloat16, which {cpu_model()} only emulates (10-25x slower): "
                             f"resume it on a CPU with AVX512-BF16 or AMX or on CUDA, or set {EMULATED_BF16}=1")
        return saved
    if args.bf16 and not native:
        where = "this GPU" if device.type == "cuda" else f"this CPU ({cpu_model()}) has neither AVX512-BF16 nor AMX, so it"
        print(f"note: --bf16: {where} would emulate bfloat16, 10-25x slower than float32: running in float32. "
              f"For bf16, use a CPU with avx512_bf16 or amx_bf16 among the flags of lscpu, or CUDA "
              f"({EMULATED_BF16}=1 forces the emulation, to study its numbers)", file=sys.stderr)
    return "bfloat16" if args.bf16 and native else "float32"


def keep_freed_memory() -> None:
    """Speed: glibc hands freed blocks over 128 kB back to the OS, so every update would
    page-fault its activations in again (10-15% of an update here). Keep them (Linux only)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD: serve blocks up to 32 MB from the heap
    libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: do not give freed heap back to the OS


def torch_compile(function):
    """`torch.compile(function)`, drawing torch's own random numbers as eager code does (inductor's
    `fallback_random`), so that a compiled update differs from the eager one only by the order of its fused
    sums (tests/test_compile.py). The update compiles in pieces: torch.compile breaks its graph at every
    `backward()`, `zero_grad()` and fused Adam step (torch 2.13 on a CPU: SAC 9 graphs, MEDE 5), each
    piece's forward and backward fused. On CUDA the capture as a CUDA graph then joins the pieces into one launch."""
    return torch.compile(function, options={"fallback_random": True})


class CudaGraphs:
    """`function(*args)` as CUDA graphs (LeanRL's recipe, with torch.compile under --compile): one graph per
    `key(*args)`, e.g. the parts of the update that a call runs (does it train the actor? the targets?). A key's first
    WARMUP calls run eagerly on a side stream (the optimizers make their state, the libraries their
    handles), the next one is captured and replayed, and every later call copies the tensors among its
    `args` into the graph's own input tensors and replays: tens or hundreds of kernels launched as one,
    and no host synchronisation. The other arguments (plain numbers) are fixed at the capture: the key
    must tell them apart. Every other tensor the function reads must keep its memory: the agent's
    weights, optimizer states and temperature, the replay buffer's storage. The returned tensors are
    overwritten by the next replay of the same graph. The eager function stays the reference (tests/test_cuda.py)."""

    WARMUP = 3

    def __init__(self, function, key):
        self.function, self.key = function, key
        self.graphs, self.eager_calls = {}, {}  # key -> (graph, its args, its output); key -> calls so far

    def __call__(self, *args):
        key = self.key(*args)
        if key in self.graphs:
            graph, inputs, outputs = self.graphs[key]
            for static, new in zip(inputs, args):
                if isinstance(new, torch.Tensor):
                    if new.shape != static.shape or new.dtype != static.dtype:  # copy_ would broadcast or convert
                        raise ValueError(f"CudaGraphs: an input of {tuple(new.shape)} {new.dtype} where the graph "
                                         f"was captured with {tuple(static.shape)} {static.dtype}")
                    static.copy_(new)
            graph.replay()
            return outputs
        if not all(isinstance(arg, (torch.Tensor, int, float, str, type(None))) for arg in args):
            raise TypeError("CudaGraphs: pass every input tensor as an argument of its own (tensors in a container, "
                            "or arrays, would be fixed at the capture); other arguments must be plain numbers")
        self.eager_calls[key] = self.eager_calls.get(key, 0) + 1
        if self.eager_calls[key] <= self.WARMUP:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                outputs = self.function(*args)
            torch.cuda.current_stream().wait_stream(side)
            return outputs
        inputs = tuple(arg.clone() if isinstance(arg, torch.Tensor) else arg for arg in args)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):  # records this call's kernels without running them ...
            outputs = self.function(*inputs)
        self.graphs[key] = graph, inputs, outputs
        graph.replay()  # ... which the replay does
        return outputs
