"""DIAYN (diayn_continuous.py): the augmented reward against its formula, no discriminator
gradient into the policy, measurement-only q(z|s,a), smoke runs."""

import copy
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import diayn_continuous as diayn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "diayn_continuous.py")


def small_agent(separate=False, num_z=3, seed=0, **overrides):
    torch.manual_seed(seed)
    args = diayn.Args(num_z=num_z, separate_networks=separate, hidden_dim=16, disc_hidden_dim=16, **overrides)
    return diayn.DIAYN(4, 2, -np.ones(2), np.ones(2), args, torch.device("cpu"))


def random_batch(members, size=8, obs_dim=4, act_dim=2, num_z=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    z = torch.randint(num_z, (members, size), generator=g) if members == 1 else \
        torch.arange(members).unsqueeze(1).expand(members, size).clone()
    return diayn.Batch(obs=torch.randn(members, size, obs_dim, generator=g),
                       actions=torch.rand(members, size, act_dim, generator=g) * 2 - 1,
                       rewards=torch.randn(members, size, generator=g),
                       next_obs=torch.randn(members, size, obs_dim, generator=g),
                       terminations=(torch.rand(members, size, generator=g) < 0.3).float(), z=z)


@pytest.mark.parametrize("add_log_pz, expected", [
    # r = [1, -2], log q(z|s_t) = [-0.5, -3], c = 2, β = 0.5:
    (False, [2 * 1 + 0.5 * -0.5, 2 * -2 + 0.5 * -3]),  # [1.75, -5.5]
    # - log p(z) = log |Z| = log 4 is added to the bonus:
    (True, [2 * 1 + 0.5 * (-0.5 + np.log(4)), 2 * -2 + 0.5 * (-3 + np.log(4))]),
])
def test_augmented_reward_is_the_formula(add_log_pz, expected):
    seen = {}

    def log_prob(x, z, train_params=True):
        seen["x"] = x
        return torch.tensor([[-0.5, -3.0]])

    batch = diayn.Batch(obs=torch.tensor([[[1.0, 2.0], [3.0, 4.0]]]), actions=torch.zeros(1, 2, 2),
                        rewards=torch.tensor([[1.0, -2.0]]), next_obs=torch.full((1, 2, 2), 9.0),
                        terminations=torch.zeros(1, 2), z=torch.tensor([[0, 3]]))
    reward = diayn.augmented_reward(SimpleNamespace(log_prob=log_prob), batch, beta=0.5, reward_scale=2.0,
                                    add_log_pz=add_log_pz, num_z=4)
    assert reward.tolist()[0] == pytest.approx(expected, abs=1e-6)
    assert torch.equal(seen["x"], batch.obs), "the bonus is log q(z|s_t), on the state s_t (not s')"


def test_critic_target_uses_the_augmented_reward_and_no_discriminator_prior():
    # r̂ = [1, 2], d = [0, 1], log π' = [-1, 0.5], Q̄' = ([3, 5], [4, 1]); γ = 0.9, α = 0.5:
    # y = [1 + 0.9·(3 + 0.5), 2] = [4.15, 2];  Q_1 = [4, 2] -> 0.0225/2;  Q_2 = [5, 1] -> (0.7225 + 1)/2
    batch = diayn.Batch(obs=torch.zeros(1, 2, 2), actions=torch.zeros(1, 2, 2), rewards=torch.full((1, 2), 99.0),
                        next_obs=torch.zeros(1, 2, 2), terminations=torch.tensor([[0.0, 1.0]]), z=torch.tensor([[0, 1]]))
    actor = SimpleNamespace(sample=lambda s, z: (torch.zeros(1, 2, 2), torch.tensor([[-1.0, 0.5]])))
    qf_target = lambda s, z, a, train_params=True: torch.tensor([[[3.0, 5.0]], [[4.0, 1.0]]])  # noqa: E731
    qf = lambda s, z, a, train_params=True: torch.tensor([[[4.0, 2.0]], [[5.0, 1.0]]])  # noqa: E731
    target = diayn.critic_target(qf_target, actor, batch, torch.tensor([[1.0, 2.0]]), torch.tensor(0.5), gamma=0.9)
    assert torch.allclose(target, torch.tensor([[4.15, 2.0]]))
    loss, _ = diayn.critic_loss(qf, batch, target)
    assert loss.item() == pytest.approx(0.0225 / 2 + (0.7225 + 1) / 2, abs=1e-6)


@pytest.mark.parametrize("separate", [False, True])
def test_the_policy_gets_no_gradient_from_the_discriminator(separate):
    """Through a whole update, q(z|s) only ever sees replay-buffer states (nothing the policy
    computed), and everything it says about the agent's data is computed without gradient."""
    agent = small_agent(separate)
    batch = random_batch(3 if separate else 1)
    calls = []
    real_forward = agent.disc_s.net.forward

    def recording_forward(x, train_params=True):
        out = real_forward(x, train_params)
        calls.append((x.requires_grad, out.requires_grad))
        return out

    agent.disc_s.net.forward = recording_forward
    agent.update(batch, 0)
    assert calls, "the discriminator was not used"
    assert not any(input_needs_grad for input_needs_grad, _ in calls), "a policy output reached q(z|s)"
    assert [out_needs_grad for _, out_needs_grad in calls] == [False, True], \
        "q(z|s) is used once without gradient (the reward) and once to be trained"
    assert all(p.grad is None or p.grad.abs().sum() > 0 for p in agent.disc_s.parameters())
    reward = diayn.augmented_reward(agent.disc_s, batch, 1.0, 1.0, False, 3)
    assert not reward.requires_grad


@pytest.mark.parametrize("separate", [False, True])
def test_the_measurement_discriminator_feeds_no_loss_of_the_agent(separate):
    agent = small_agent(separate)
    other = copy.deepcopy(agent)
    with torch.no_grad():
        for p in other.disc_sa.parameters():
            p.add_(torch.randn_like(p))
    batch = random_batch(3 if separate else 1)
    for a in (agent, other):
        torch.manual_seed(0)
        a.update(batch, 0)
    for name in ("actor", "qf", "qf_target", "disc_s"):
        for p, q in zip(getattr(agent, name).parameters(), getattr(other, name).parameters()):
            assert torch.equal(p, q), f"q(z|s,a) changed the {name}"


def test_the_discriminator_reward_does_reach_the_critic():
    """The bonus must matter: a different q(z|s) gives a different critic update."""
    agent = small_agent()
    other = copy.deepcopy(agent)
    with torch.no_grad():
        for p in other.disc_s.parameters():
            p.add_(torch.randn_like(p))
    batch = random_batch(1)
    for a in (agent, other):
        torch.manual_seed(0)
        a.update(batch, 0)
    assert any(not torch.equal(p, q) for p, q in zip(agent.qf.parameters(), other.qf.parameters()))


def run_script(*flags, cwd):
    return subprocess.run([sys.executable, SCRIPT, *flags], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_num_z_below_two_is_rejected(tmp_path):
    out = run_script("--num-z", "1", "--total-timesteps", "50", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith("diayn_continuous.py: error: --num-z must be at least 2")
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("env_id, extra", [("MultiGoal-v0", ["--add-log-pz"]), ("Hopper-v4", []),
                                           ("Hopper-v4", ["--separate-networks", "--num-z", "2"])])
def test_smoke_run_writes_eval_json_and_the_figure2_tags(tmp_path, env_id, extra):
    out = run_script("--env-id", env_id, "--total-timesteps", "300", "--learning-starts", "100", "--hidden-dim", "32",
                     "--disc-hidden-dim", "32", "--eval-episodes", "2", "--num-z", "3", *extra, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    result = json.loads((run_dir / "eval.json").read_text())
    num_z = 2 if "--separate-networks" in extra else 3
    assert result["env_id"] == env_id and result["num_z"] == num_z and result["global_step"] == 300
    assert [entry["z"] for entry in result["per_z"]] == list(range(num_z))

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    tags = set(EventAccumulator(str(run_dir)).Reload().Tags()["scalars"])
    for tag in ("charts/log_q_z_given_sa", "charts/log_q_z_given_s", "charts/accuracy_z_given_sa",
                "charts/accuracy_z_given_s", "losses/qf_loss", "losses/actor_loss"):
        assert tag in tags
