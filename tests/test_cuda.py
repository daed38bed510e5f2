"""What a user with a GPU gets (issue 36): every script trains and evaluates on CUDA, in float32 and
bf16, and the files of a CUDA run load, resume and plot in a process that sees no GPU. Every test
here needs CUDA and is skipped without it; the rest of the suite asks for the CPU where it checks
CPU behaviour (bit-exact resume, saved-model equality), so the whole suite runs with a GPU visible."""

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from transitions import add_random_steps, random_buffer

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--env-id", "MultiGoal-v0", "--hidden-dim", "32", "--learning-starts", "100", "--eval-episodes", "2",
        "--total-timesteps", "300"]
NO_GPU = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # a process of this machine that sees no GPU


def run(script: str, *flags: str, cwd, env=None) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, os.path.join(ROOT, script), *flags], cwd=cwd, capture_output=True,
                          text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr
    return done


def tensors_in(value) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in tensors_in(v)]
    return []


@pytest.mark.parametrize("bf16", [False, True], ids=["float32", "bf16"])
@pytest.mark.parametrize("script, flags", [
    ("sac_continuous.py", []),
    ("mede_continuous.py", ["--num-z", "3", "--measure-every", "200", "--measure-steps", "50"]),
    ("mede_continuous.py", ["--num-z", "2", "--separate-networks"]),
    ("mede_continuous.py", ["--num-z", "3", "--no-cuda-graphs"]),
    ("diayn_continuous.py", ["--num-z", "3", "--measure-every", "200", "--measure-steps", "50"]),
    ("sac_continuous.py", ["--compile"]),
    ("mede_continuous.py", ["--num-z", "2", "--separate-networks", "--compile"]),
], ids=["sac", "mede", "mede-separate", "mede-eager", "diayn", "sac-compile", "mede-separate-compile"])
def test_every_script_trains_and_evaluates_on_cuda(tmp_path, script, flags, bf16):
    done = run(script, *TINY, *flags, *(["--bf16"] if bf16 else []), "--run-dir", "run", cwd=tmp_path)
    precision = "bfloat16" if bf16 else "float32"
    assert f"| cuda, {precision} |" in done.stdout.splitlines()[0]
    result = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert result["precision"] == precision and result["global_step"] == 300
    assert all(math.isfinite(r) for entry in result["per_z"] for r in entry["returns"])


def test_a_cuda_run_loads_resumes_and_plots_in_a_process_that_sees_no_gpu(tmp_path):
    flags = [*TINY, "--num-z", "3", "--save-model", "--checkpoint-every", "300", "--run-dir", "run"]
    run("mede_continuous.py", *flags, cwd=tmp_path)
    run_dir = tmp_path / "run"
    for name in ("checkpoint.pt", "mede_continuous.pt"):  # saved on the CPU: torch.load needs no map_location
        found = tensors_in(torch.load(run_dir / name, weights_only=False))
        assert found and all(t.device.type == "cpu" for t in found), name
    state = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    assert isinstance(state["rng"]["cuda"], torch.Tensor), "the state of the run's own GPU, not a list of all"

    plotted = run("plot.py", "goals", str(run_dir / "mede_continuous.pt"), "--episodes", "1", cwd=tmp_path, env=NO_GPU)
    assert "goals reached in 1 stochastic episodes per policy" in plotted.stdout
    resumed = run("mede_continuous.py", "--resume", str(run_dir), "--total-timesteps", "400", cwd=tmp_path, env=NO_GPU)
    assert "resuming at step 300" in resumed.stdout and "cpu (no CUDA GPU found)" in resumed.stdout.splitlines()[0]
    assert "the checkpoint's CUDA random state is skipped" in resumed.stderr
    assert json.loads((run_dir / "eval.json").read_text())["global_step"] == 400


def test_a_finished_cuda_run_resumed_on_a_cpu_says_it_is_finished(tmp_path):
    run("sac_continuous.py", *TINY, "--save-model", "--checkpoint-every", "300", "--run-dir", "run", cwd=tmp_path)
    before = sorted(p.name for p in (tmp_path / "run").iterdir())
    again = run("sac_continuous.py", "--resume", "run", cwd=tmp_path, env=NO_GPU)
    assert "already finished at step 300" in again.stdout and "Traceback" not in again.stderr
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == before


# ------------------------------------------------------------------ the update as CUDA graphs (issue 39)
def agents(name, flags):
    """The module, its Args, and two copies of one freshly initialised agent on the GPU."""
    import copy

    import diayn_continuous
    import mede_continuous
    import sac_continuous
    module = {"sac": sac_continuous, "mede": mede_continuous, "diayn": diayn_continuous}[name]
    agent_class = {"sac": "SAC", "mede": "MEDE", "diayn": "DIAYN"}[name]
    sizes = {} if name == "sac" else {"num_z": 3, "disc_hidden_dim": 32}
    args = module.Args(hidden_dim=32, **sizes, **flags)
    torch.manual_seed(0)
    eager = getattr(module, agent_class)(5, 2, -torch.ones(2).numpy(), torch.ones(2).numpy(), args,
                                         torch.device("cuda"))
    return module, args, eager, copy.deepcopy(eager)


@pytest.mark.parametrize("name, flags, compiled", [
    ("sac", {}, False), ("sac", {"policy_frequency": 2, "target_network_frequency": 2}, False), ("mede", {}, False),
    ("mede", {"separate_networks": True, "autotune": True}, False), ("diayn", {}, False),
    ("sac", {}, True), ("mede", {}, True)], ids=["sac", "sac-targets-every-2", "mede", "mede-separate", "diayn",
                                                 "sac-compile", "mede-compile"])
def test_the_update_as_cuda_graphs_equals_the_eager_update(name, flags, compiled):
    """As main's `train`: the rows of a batch in, the gather from the buffer and the update inside the graph,
    with a step stored between two updates (the graph must read the buffer's storage as it is now); with
    --compile, the compiled update captured. Tolerance on every weight after 16 updates (each schedule's
    graph: 3 eager warm-up calls, the capture, then at least 4 replays): 1e-5 absolute, the same kernels in
    the same order (in practice the two agree to the last bit); compiled, 1e-4 absolute plus 1e-4 relative
    (fused kernels sum in another order, and the differences grow over the updates)."""
    import numpy as np

    from run_utils.hardware import CudaGraphs, torch_compile
    module, args, eager, captured = agents(name, flags)
    members = 3 if flags.get("separate_networks") else 1
    rb, rng = random_buffer(module, torch.device("cuda"), 400, 200, members), np.random.default_rng(1)
    train = lambda rows, step: captured.update(rb.batch(rows), step)  # noqa: E731
    update = CudaGraphs(torch_compile(train) if compiled else train,
                        lambda rows, step: (step % args.policy_frequency == 0, step % args.target_network_frequency == 0))
    tolerance = dict(rtol=1e-4, atol=1e-4) if compiled else dict(rtol=0, atol=1e-5)
    for step in range(16):
        add_random_steps(rb, module, 3, 1, rng)
        rows = rb.rows(64)  # a new batch every step: a graph that kept its first batch would drift from eager
        torch.manual_seed(100 + step)
        expected = eager.update(rb.batch(rows), step)
        torch.manual_seed(100 + step)
        got = update(rows, step)
        for key, value in expected.items():
            torch.testing.assert_close(got[key], value, **tolerance, msg=f"step {step}: {key}")
    schedules = {(step % args.policy_frequency == 0, step % args.target_network_frequency == 0) for step in range(16)}
    assert len(update.graphs) == len(schedules)  # one graph per schedule (SAC's default trains its actor every 2nd)
    for (key, p), q in zip(eager.actor.named_parameters(), captured.actor.parameters()):
        torch.testing.assert_close(q, p, **tolerance, msg=key)
    for p, q in zip(eager.qf_target.parameters(), captured.qf_target.parameters()):
        torch.testing.assert_close(q, p, **tolerance)


@pytest.mark.parametrize("name, flags", [("sac", {}), ("mede", {}), ("mede", {"separate_networks": True})])
def test_acting_as_a_cuda_graph_equals_eager_acting(name, flags):
    """As main's `act`: new observations (and z) every step, the same random state, the same actions,
    also after an update has changed the weights between two replays (the graph reads them in place)."""
    from run_utils.hardware import CudaGraphs
    module, args, agent, _ = agents(name, flags)
    if name == "sac":
        eager = lambda obs, z: agent.actor.sample(obs)[0]  # noqa: E731
        act = CudaGraphs(lambda obs: agent.actor.sample(obs)[0], lambda obs: "act")
        graph = lambda obs, z: act(obs)  # noqa: E731
    else:
        eager, act = agent.act, CudaGraphs(agent.act, lambda obs, z: "act")
        graph = act
    members = 3 if flags.get("separate_networks") else 1
    rb = random_buffer(module, torch.device("cuda"), 400, 200, members)
    g = torch.Generator(device="cuda").manual_seed(0)
    for step in range(8):
        obs = torch.randn(members, 5, device="cuda", generator=g)
        z = torch.arange(members, device="cuda") if members > 1 else torch.randint(3, (1,), device="cuda", generator=g)
        with torch.inference_mode():
            torch.manual_seed(step)
            expected = eager(obs, z).clone()
            torch.manual_seed(step)
            got = graph(obs, z)
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5, msg=f"step {step}")
        agent.update(rb.batch(rb.rows(64)), step)  # the weights move between two acts
    assert len(act.graphs) == 1


def test_the_replay_buffer_on_the_gpu_holds_what_the_cpu_one_holds():
    import numpy as np

    import mede_continuous
    from run_utils.buffer import ReplayBuffer
    buffers = [ReplayBuffer(mede_continuous.Batch, 7, 2, torch.device(d)) for d in ("cpu", "cuda")]
    rng = np.random.default_rng(0)
    for _ in range(10):  # wraps around
        step = dict(obs=rng.normal(size=(2, 3)), actions=rng.uniform(-1, 1, (2, 2)), rewards=rng.normal(size=2),
                    next_obs=rng.normal(size=(2, 3)), terminations=rng.uniform(size=2) < 0.2,
                    z=rng.integers(4, size=2))
        for buffer in buffers:
            buffer.add(**step)
    cpu, gpu = (buffer.state_dict() for buffer in buffers)
    assert cpu.keys() == gpu.keys()
    for key in mede_continuous.Batch._fields:
        assert gpu[key].device.type == "cpu" and torch.equal(cpu[key], gpu[key]), key
    assert buffers[1].sample(16).obs.device.type == "cuda"
