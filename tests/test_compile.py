"""--compile (issue 39): acting and the update through torch.compile, on the CPU here (on CUDA, compiled
and then captured as CUDA graphs: tests/test_cuda.py). The eager update stays the reference."""

import copy

import numpy as np
import pytest
import torch
from torch._dynamo.utils import counters

import diayn_continuous as diayn
import mede_continuous as mede
from run_utils import hardware
import sac_continuous as sac
from transitions import random_buffer

AGENTS = {"sac": (sac, sac.SAC, {}), "mede": (mede, mede.MEDE, {"num_z": 3, "disc_hidden_dim": 32}),
          "diayn": (diayn, diayn.DIAYN, {"num_z": 3, "disc_hidden_dim": 32})}


def tensors(agent) -> dict:
    """Every tensor of an agent's state by name: weights, targets, optimizer moments and steps, temperature."""
    found = {}
    for part, value in agent.modules().items():
        if isinstance(value, torch.optim.Optimizer):
            found |= {f"{part}.{i}.{k}": t for i, state in value.state_dict()["state"].items() for k, t in state.items()}
        elif isinstance(value, torch.nn.Module):
            found |= {f"{part}.{k}": t for k, t in value.state_dict().items()}
        else:
            found[part] = value
    return found


@pytest.mark.parametrize("name", ["sac", "mede", "diayn"])
def test_the_compiled_update_equals_the_eager_update_on_a_fixed_batch(name):
    """As main's `train` under --compile: the rows of a batch in, the gather and the update compiled. The first
    update trains everything (critics, actor, α, the discriminator, the targets) on the same batch with the same
    random state, and moves every weight and every optimizer state as the eager update does; the next three
    follow a schedule (the actor and the targets every second step), so a compiled update that kept the
    schedule of its first call would differ. Tolerance: 1e-5 absolute plus 1e-5 relative, for fused kernels
    that sum in another order (measured here: 3e-7 absolute, 1e-7 relative after one update; at hidden 256,
    benchmarks/compile_update.py measures 3e-8 for SAC's actor, 1.7e-6 for MEDE's); every part that the
    first update trains moves by more than 1e-4."""
    module, agent_class, sizes = AGENTS[name]
    torch.manual_seed(0)
    args = module.Args(hidden_dim=32, policy_frequency=2, target_network_frequency=2, **sizes)
    eager = agent_class(5, 2, -np.ones(2), np.ones(2), args, torch.device("cpu"))
    with torch.no_grad():  # targets apart from the critics, so that the target update moves them by about τ·0.1, not τ·lr
        for target in eager.qf_target.parameters():
            target.add_(0.1 * torch.randn_like(target))
    agent, before = copy.deepcopy(eager), {k: t.clone() for k, t in tensors(eager).items()}
    rb = random_buffer(module, torch.device("cpu"), 300, 300)
    torch._dynamo.reset()
    counters.clear()
    train = hardware.torch_compile(lambda rows, step: agent.update(rb.batch(rows), step))
    for step in range(4):
        torch.manual_seed(1 + step)
        rows = rb.rows(64)
        torch.manual_seed(100 + step)
        expected = eager.update(rb.batch(rows), step)
        torch.manual_seed(100 + step)
        got = train(rows, step)
        assert got.keys() == expected.keys()
        for key, value in expected.items():
            torch.testing.assert_close(got[key], value, rtol=1e-5, atol=1e-5, msg=f"step {step}: {key}")
        after, compiled_after = tensors(eager), tensors(agent)
        assert after.keys() == compiled_after.keys()
        for key, value in after.items():
            torch.testing.assert_close(compiled_after[key], value, rtol=1e-5, atol=1e-5, msg=f"step {step}: {key}")
        if step == 0:
            moved = {key for key, value in after.items()  # an optimizer's state is made by its first step
                     if key not in before or (value.float() - before[key].float()).abs().max() > 1e-4}
            trained = {"actor", "qf", "qf_target", "q_optimizer", "actor_optimizer"}
            trained |= {"log_alpha"} if eager.args.autotune else set()
            trained |= {part for part in eager.modules() if part.startswith("disc")}  # MEDE's two, DIAYN's one
            assert {key.split(".")[0] for key in moved} == trained
    assert counters["stats"]["unique_graphs"] > 0  # torch.compile compiled (not everything fell back to eager)


@pytest.mark.parametrize("compile_flag", [True, False])
def test_main_acts_and_updates_through_the_compiled_functions_with_compile_and_nothing_without(
        tmp_path, monkeypatch, compile_flag):
    calls = []  # one list per compiled function: its calls

    def count_calls(function):
        mine = []
        calls.append(mine)

        def counted(*args):
            mine.append(args)
            return function(*args)
        return counted

    monkeypatch.setattr(hardware, "torch_compile", count_calls)
    monkeypatch.chdir(tmp_path)
    sac.main(sac.Args(env_id="MultiGoal-v0", hidden_dim=16, learning_starts=100, total_timesteps=150, eval_episodes=1,
                      checkpoint_every=0, cuda=False, compile=compile_flag))
    # acting, then the update, each once per learning step (before learning_starts the actions are random)
    assert [len(c) for c in calls] == ([50, 50] if compile_flag else [])
