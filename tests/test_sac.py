"""Tests of sac_continuous.py against SPEC §1-§2 and the SAC equations, not against its code.

Loss tests feed small fake actors/critics that return fixed tensors, so every expected value
is a literal computed by hand in the comments. End-to-end tests run main() in a temporary
directory (in process, or as a subprocess for the command line) and check what it wrote.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.distributions import AffineTransform, Normal, TanhTransform, TransformedDistribution

import evaluation
from run_utils.buffer import ReplayBuffer
from sac_continuous import (SAC, Actor, Args, Batch, TwinQNetwork, actor_loss, alpha_loss, critic_loss, critic_target,
                            load_model, main, make_envs, transitions_to_store)

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "sac_continuous.py"
FOUR_GOALS = np.array([(5.0, 0.0), (-5.0, 0.0), (0.0, 5.0), (0.0, -5.0)])  # MultiGoal-v0, SPEC §6


def t(x):
    return torch.tensor(x, dtype=torch.float32)


# ------------------------------------------------------------------------------ fakes
class FakeActor:
    """actor.sample(obs) -> fixed (actions, log_pi); remembers the obs it was called with."""

    def __init__(self, actions, log_pi):
        self.actions = t(actions).requires_grad_()
        self.log_pi = t(log_pi).requires_grad_()
        self.calls = []

    def sample(self, obs):
        self.calls.append(obs.clone())
        return self.actions, self.log_pi


class FakeQ:
    """qf(obs, actions) -> a fixed [2, B] tensor; remembers its inputs."""

    def __init__(self, values):
        self.values = t(values).requires_grad_()
        self.calls = []

    def __call__(self, obs, actions, train_params=True):
        self.calls.append((obs.clone(), actions.detach().clone()))
        return self.values


# ------------------------------------------------------------------------ 1. critic loss
def test_critic_loss_hand_computed():
    # B = 3, obs_dim = act_dim = 1, gamma = 0.5, alpha = 0.5
    batch = Batch(obs=t([[10.0], [11.0], [12.0]]), actions=t([[0.1], [0.2], [0.3]]),
                  rewards=t([1.0, -2.0, 0.5]), next_obs=t([[20.0], [21.0], [22.0]]),
                  terminations=t([0.0, 1.0, 0.0]))  # row 1 is terminal
    actor = FakeActor(actions=[[0.7], [0.8], [0.9]], log_pi=[-1.0, -2.0, 0.0])
    qf_target = FakeQ([[3.0, 1.0, 4.0],    # Q̄_1(s', a')
                       [2.0, 5.0, -2.0]])  # Q̄_2(s', a')
    qf = FakeQ([[2.0, -1.0, 0.5],          # Q_1(s, a)
                [3.25, -2.0, -1.5]])       # Q_2(s, a)
    # min_j Q̄_j              = [2.0, 1.0, -2.0]      (mean would be [2.5, 3.0, 1.0])
    # α log π'               = [-0.5, -1.0, 0.0]
    # v' = min - α log π'    = [2.5, 2.0, -2.0]
    # y = r + γ(1-d) v'      = [1 + 0.5·2.5, -2 + 0 (terminal), 0.5 + 0.5·(-2)] = [2.25, -2.0, -0.5]
    # critic 1: Q_1 - y = [-0.25, 1.0, 1.0]  -> mean square (0.0625 + 1 + 1)/3 = 0.6875
    # critic 2: Q_2 - y = [1.0, 0.0, -1.0]   -> mean square (1 + 0 + 1)/3     = 0.666...
    # loss = 0.6875 + 2/3 = 65/48 = 1.3541666...
    target = critic_target(qf_target, actor, batch, alpha=t([0.5]), gamma=0.5)
    torch.testing.assert_close(target, t([2.25, -2.0, -0.5]))
    loss, info = critic_loss(qf, batch, target)
    assert loss.item() == pytest.approx(65 / 48, abs=1e-6)
    assert info["qf1_loss"].item() == pytest.approx(0.6875, abs=1e-6)
    assert info["qf2_loss"].item() == pytest.approx(2 / 3, abs=1e-6)
    assert info["qf1_values"].item() == pytest.approx((2.0 - 1.0 + 0.5) / 3, abs=1e-6)
    assert info["qf2_values"].item() == pytest.approx((3.25 - 2.0 - 1.5) / 3, abs=1e-6)

    # a' is sampled at s', the TARGET critic evaluates (s', a'), the online critic (s, a)
    assert len(actor.calls) == 1 and torch.equal(actor.calls[0], batch.next_obs)
    assert len(qf_target.calls) == 1
    assert torch.equal(qf_target.calls[0][0], batch.next_obs) and torch.equal(qf_target.calls[0][1], actor.actions.detach())
    assert len(qf.calls) == 1
    assert torch.equal(qf.calls[0][0], batch.obs) and torch.equal(qf.calls[0][1], batch.actions)

    # The target is a constant: gradient reaches only the online critic's output,
    # d loss / d Q_j = 2 (Q_j - y) / B; nothing flows into the actor or the target critic.
    loss.backward()
    expected = torch.tensor([[-0.25, 1.0, 1.0], [1.0, 0.0, -1.0]]) * 2 / 3
    torch.testing.assert_close(qf.values.grad, expected)
    assert actor.actions.grad is None and actor.log_pi.grad is None and qf_target.values.grad is None


def test_critic_loss_termination_only_stops_bootstrap():
    # Same transition twice, once terminal: with d = 1 the target is r alone, with d = 0 it bootstraps.
    # gamma = 0.9, alpha = 0.2, r = 1, Q̄ = (4, 6) -> min 4, log π' = -0.5 -> v' = 4 + 0.1 = 4.1
    # y = [1 + 0.9·4.1, 1] = [4.69, 1.0];  Q = 0 everywhere -> loss = 2 · (4.69² + 1²)/2 = 22.9961
    batch = Batch(obs=t([[0.0], [0.0]]), actions=t([[0.0], [0.0]]), rewards=t([1.0, 1.0]),
                  next_obs=t([[1.0], [1.0]]), terminations=t([0.0, 1.0]))
    target = critic_target(FakeQ([[4.0, 4.0], [6.0, 6.0]]), FakeActor([[0.0], [0.0]], [-0.5, -0.5]), batch,
                           alpha=t([0.2]), gamma=0.9)
    loss, _ = critic_loss(FakeQ([[0.0, 0.0], [0.0, 0.0]]), batch, target)
    assert loss.item() == pytest.approx(4.69**2 + 1.0, rel=1e-6)


# ------------------------------------------------------------------------- 2. actor loss
def test_actor_loss_hand_computed():
    # alpha = 0.5, log π = [-1, 2], Q = [[1, 4], [2, -2]] -> min_j Q_j = [1, -2]
    # α log π - min Q = [-0.5 - 1, 1 + 2] = [-1.5, 3.0] -> mean 0.75
    # (max: -2.75; mean over critics: 0.0; + Q: -0.25; without α: 1.0)
    actor = FakeActor(actions=[[0.3], [-0.4]], log_pi=[-1.0, 2.0])
    qf = FakeQ([[1.0, 4.0], [2.0, -2.0]])
    obs = t([[5.0], [6.0]])
    loss, log_pi = actor_loss(actor, qf, obs, alpha=t([0.5]))
    assert loss.item() == pytest.approx(0.75, abs=1e-6)
    # the critic is evaluated at (s, a) with a the actor's fresh sample at s
    assert torch.equal(actor.calls[0], obs)
    assert torch.equal(qf.calls[0][0], obs) and torch.equal(qf.calls[0][1], actor.actions.detach())
    # the returned log π (for the alpha loss) is the sample's, and carries no graph into the actor
    assert torch.equal(log_pi, actor.log_pi.detach()) and not log_pi.requires_grad


def _actor_grads(actor, qf, obs, alpha, seed=0):
    actor.zero_grad(set_to_none=True)
    qf.zero_grad(set_to_none=True)
    torch.manual_seed(seed)  # same ε for every call
    loss, _ = actor_loss(actor, qf, obs, alpha)
    loss.backward()
    return [p.grad.clone() if p.grad is not None else None for p in actor.parameters()]


def test_actor_loss_gradients_real_networks():
    torch.manual_seed(0)
    actor = Actor(3, 2, 16, [-1.0, -1.0], [1.0, 1.0])
    qf = TwinQNetwork(3, 2, 16)
    obs = torch.randn(8, 3)

    # alpha = 0: the loss is -min Q(s, a(φ)), so the actor's gradient exists only if it flows
    # through the reparameterised action (a detached action would give none)
    grads = _actor_grads(actor, qf, obs, alpha=t([0.0]))
    for (name, p), g in zip(actor.named_parameters(), grads):
        assert g is not None and g.abs().sum() > 0, f"actor parameter {name} got no gradient"
    # the critics' weights are not trained by the actor loss
    assert all(p.grad is None for p in qf.parameters())

    # with alpha > 0 as well; the actor's gradient depends on the critic's weights
    grads_before = _actor_grads(actor, qf, obs, alpha=t([0.2]))
    assert all(p.grad is None for p in qf.parameters())
    with torch.no_grad():
        qf.net.weights[-1].mul_(-3.0)
    grads_after = _actor_grads(actor, qf, obs, alpha=t([0.2]))
    assert any(not torch.allclose(a, b) for a, b in zip(grads_before, grads_after))


# ------------------------------------------------------------------------- 3. alpha loss
def test_alpha_loss_hand_computed():
    # α = 0.5, log π = [-1, 3], H̄ = -2: log π + H̄ = [-3, 1]
    # -α (log π + H̄) = [1.5, -0.5] -> mean 0.5    (with log α instead of α: mean -log 0.5 = 0.693)
    loss = alpha_loss(torch.tensor([math.log(0.5)]), t([-1.0, 3.0]), -2.0)
    assert loss.item() == pytest.approx(0.5, abs=1e-6)


@pytest.mark.parametrize("log_pi, should_increase", [(1.5, True), (-3.0, False)])
def test_alpha_moves_towards_target_entropy(log_pi, should_increase):
    # act_dim = 1, H̄ = -1. log π = 1.5: entropy -1.5 < -1 (too little) -> α must grow.
    # log π = -3: entropy 3 > -1 (too much) -> α must shrink.
    log_alpha = torch.tensor([math.log(0.2)], requires_grad=True)
    optimizer = torch.optim.Adam([log_alpha], lr=0.1)
    loss = alpha_loss(log_alpha, t([log_pi, log_pi]), -1.0)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    new_alpha = log_alpha.exp().item()
    assert (new_alpha > 0.2) if should_increase else (new_alpha < 0.2)


# ------------------------------------------------------------------------------ 4. Actor
# scale (high-low)/2 = [2, 1.5], bias (high+low)/2 = [0, 1.5]. (With high = [2, 1] the scales
# would be [2, 0.5]: their log-determinant sums to 0 and a missing log(scale) term would go unseen.)
LOW, HIGH = [-2.0, 0.0], [2.0, 3.0]


def reference_log_prob(mean, log_std, action):
    """log π(a|s) of a = tanh(u)·scale + bias, u ~ N(mean, std), with torch.distributions in float64."""
    low, high = torch.tensor(LOW, dtype=torch.float64), torch.tensor(HIGH, dtype=torch.float64)
    dist = TransformedDistribution(Normal(mean.double(), log_std.double().exp()),
                                   [TanhTransform(), AffineTransform((high + low) / 2, (high - low) / 2)])
    return dist.log_prob(action.double()).sum(-1)


def test_actor_sample_log_prob_matches_reference():
    torch.manual_seed(0)
    actor = Actor(3, 2, 32, LOW, HIGH)
    obs = 2 * torch.randn(256, 3)
    action, log_pi = actor.sample(obs)
    assert action.shape == (256, 2) and log_pi.shape == (256,)
    mean, log_std = actor(obs)
    ref = reference_log_prob(mean.detach(), log_std.detach(), action.detach())
    torch.testing.assert_close(log_pi.detach().double(), ref, rtol=1e-4, atol=1e-4)
    assert (action >= t(LOW)).all() and (action <= t(HIGH)).all()
    # the action range is used: both dimensions spread over their own interval
    assert action[:, 0].min() < -0.2 and action[:, 0].max() > 0.2
    assert action[:, 1].min() < 1.2 and action[:, 1].max() > 1.8


def test_actor_sample_distribution():
    # For one state, the pre-tanh samples are N(mean, exp(log_std)).
    torch.manual_seed(1)
    actor = Actor(3, 2, 32, LOW, HIGH)
    obs = torch.randn(1, 3).expand(20000, 3)
    with torch.no_grad():
        action, _ = actor.sample(obs)
        mean, log_std = actor(obs[:1])
    low, high = t(LOW), t(HIGH)
    u = torch.atanh(((action - (high + low) / 2) / ((high - low) / 2)).double().clamp(-1 + 1e-7, 1 - 1e-7))
    torch.testing.assert_close(u.mean(0), mean[0].double(), atol=0.03, rtol=0)
    torch.testing.assert_close(u.std(0), log_std[0].exp().double(), rtol=0.03, atol=0)


def test_actor_saturated_actions_stay_in_bounds_with_finite_log_prob():
    torch.manual_seed(2)
    actor = Actor(3, 2, 32, LOW, HIGH)
    with torch.no_grad():  # push the means far out: tanh saturates to ±1 in float32
        actor.net.biases[-1][0, 0, :2] = torch.tensor([30.0, -30.0])
        actor.net.weights[-1].zero_()
    action, log_pi = actor.sample(torch.randn(64, 3))
    assert (action >= t(LOW)).all() and (action <= t(HIGH)).all()
    assert torch.isfinite(log_pi).all()


def test_actor_deterministic_is_squashed_mean():
    torch.manual_seed(3)
    actor = Actor(3, 2, 32, LOW, HIGH)
    obs = torch.randn(16, 3)
    mean, _ = actor(obs)
    expected = torch.tanh(mean) * t([2.0, 1.5]) + t([0.0, 1.5])  # scale (high-low)/2, bias (high+low)/2
    torch.testing.assert_close(actor.deterministic(obs), expected)


# --------------------------------------------------------------------------- 5. critics
def test_twin_q_equals_two_independent_mlps():
    torch.manual_seed(0)
    qf = TwinQNetwork(3, 2, 16)
    obs, act = torch.randn(7, 3), torch.randn(7, 2)
    out = qf(obs, act)
    assert out.shape == (2, 7)
    for j in range(2):
        x = torch.cat([obs, act], dim=-1)
        layers = list(zip(qf.net.weights, qf.net.biases))
        for i, (w, b) in enumerate(layers):  # w: [2, fan_in, fan_out], b: [2, 1, fan_out]
            x = F.linear(x, w[j].T, b[j, 0])
            if i < len(layers) - 1:
                x = torch.relu(x)
        torch.testing.assert_close(out[j], x.squeeze(-1))
    # two different critics: different weights and different values
    assert not torch.allclose(out[0], out[1])
    for w in qf.net.weights:
        assert not torch.equal(w[0], w[1])


def test_twin_q_critics_are_separate_parameters():
    torch.manual_seed(0)
    qf = TwinQNetwork(3, 2, 16)
    out = qf(torch.randn(5, 3), torch.randn(5, 2))
    out[0].sum().backward()  # a loss on critic 1 only
    for p in qf.parameters():
        assert p.grad[0].abs().sum() > 0
        assert torch.equal(p.grad[1], torch.zeros_like(p.grad[1]))


def test_twin_q_train_params_false_gives_gradient_to_actions_only():
    torch.manual_seed(0)
    qf = TwinQNetwork(3, 2, 16)
    act = torch.randn(5, 2, requires_grad=True)
    out_frozen = qf(torch.randn(5, 3), act, train_params=False)
    out_frozen.sum().backward()
    assert act.grad is not None and act.grad.abs().sum() > 0
    assert all(p.grad is None for p in qf.parameters())


# ------------------------------------------------------------------------- 6. SAC.update
def make_agent(**overrides):
    torch.manual_seed(0)
    args = Args(hidden_dim=16, batch_size=32, **overrides)
    return SAC(3, 2, [-1.0, -1.0], [1.0, 1.0], args, torch.device("cpu"))


def random_batch(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Batch(obs=torch.randn(n, 3, generator=g), actions=torch.rand(n, 2, generator=g) * 2 - 1,
                 rewards=torch.randn(n, generator=g), next_obs=torch.randn(n, 3, generator=g),
                 terminations=(torch.rand(n, generator=g) < 0.2).float())


def params(module):
    return [p.detach().clone() for p in module.parameters()]


def test_update_moves_target_by_tau():
    agent = make_agent(tau=0.25)
    assert all(torch.equal(a, b) for a, b in zip(params(agent.qf), params(agent.qf_target)))
    for step in range(3):
        target_before, online_before = params(agent.qf_target), params(agent.qf)
        agent.update(random_batch(seed=step), update_step=step)
        target_after, online_after = params(agent.qf_target), params(agent.qf)
        assert any(not torch.equal(a, b) for a, b in zip(online_before, online_after)), "critic not trained"
        for tb, ta, on in zip(target_before, target_after, online_after):
            # Q̄ <- (1 - τ) Q̄ + τ Q, with Q the critic AFTER this update's gradient step
            torch.testing.assert_close(ta, tb + 0.25 * (on - tb), rtol=1e-6, atol=1e-7)
        assert any(not torch.equal(a, b) for a, b in zip(target_before, target_after))
    # the target networks are never trained by gradient
    assert all(not p.requires_grad for p in agent.qf_target.parameters())


def test_update_target_network_frequency():
    agent = make_agent(tau=0.25, target_network_frequency=2)
    for step in range(4):
        before = params(agent.qf_target)
        agent.update(random_batch(seed=step), update_step=step)
        moved = any(not torch.equal(a, b) for a, b in zip(before, params(agent.qf_target)))
        assert moved == (step % 2 == 0), f"step {step}"


def test_update_policy_frequency_delays_actor():
    agent = make_agent(policy_frequency=2)
    for step in range(4):
        before = params(agent.actor)
        agent.update(random_batch(seed=step), update_step=step)
        changed = any(not torch.equal(a, b) for a, b in zip(before, params(agent.actor)))
        assert changed == (step % 2 == 0), f"step {step}: actor changed={changed}"
    # on each of the two even steps the actor takes policy_frequency = 2 optimizer steps
    adam_steps = {float(s["step"]) for s in agent.actor_optimizer.state.values()}
    assert adam_steps == {4.0}


@pytest.mark.parametrize("autotune", [True, False])
def test_update_alpha_autotune(autotune):
    agent = make_agent(autotune=autotune, alpha=0.3)
    alphas = []
    for step in range(4):
        info = agent.update(random_batch(seed=step), update_step=step)
        alphas.append(float(info["alpha"]))
        assert float(info["alpha"]) == pytest.approx(agent.log_alpha.exp().item())
    if autotune:
        assert alphas[0] != pytest.approx(0.3, abs=1e-6) and alphas[2] != alphas[0]
    else:
        assert alphas == [pytest.approx(0.3, abs=1e-7)] * 4
        assert agent.log_alpha.exp().item() == pytest.approx(0.3, abs=1e-7)


# ---------------------------------------------------- 7. episode boundaries, end to end
def run_main(directory, monkeypatch, **kwargs):
    """main() with cwd = `directory` (runs go to ./runs); returns its result and the run directory."""
    directory.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(directory)
    result = main(Args(**{"env_id": "MultiGoal-v0", "cuda": False, **kwargs}))
    (run_dir,) = (directory / "runs").iterdir()
    return result, run_dir


def test_replay_buffer_respects_episode_boundaries(tmp_path, monkeypatch):
    steps = 400
    result, run_dir = run_main(tmp_path, monkeypatch, seed=2, total_timesteps=steps, learning_starts=200,
                               hidden_dim=32, batch_size=64, buffer_size=1000, eval_episodes=0,
                               checkpoint_every=steps)
    assert result is None  # eval_episodes 0
    buf = torch.load(run_dir / "checkpoint.pt", weights_only=False)["buffer"]
    assert buf["size"] == steps and buf["pos"] == steps
    obs, next_obs, actions = (buf[k][:, 0].double().numpy() for k in ("obs", "next_obs", "actions"))  # env 0
    rewards, terminations = buf["rewards"][:, 0].double().numpy(), buf["terminations"][:, 0].double().numpy()
    assert obs.shape == next_obs.shape == actions.shape == (steps, 2)
    assert set(np.unique(terminations)) <= {0.0, 1.0}

    # Every stored transition obeys the dynamics s' = clip(s + clip(a, -1, 1), -7, 7):
    # one that crossed into the next episode would hold that episode's start as s'.
    np.testing.assert_allclose(next_obs, np.clip(obs + np.clip(actions, -1, 1), -7, 7), atol=1e-5)

    distance = np.linalg.norm(next_obs[:, None, :] - FOUR_GOALS[None], axis=-1).min(1)
    assert not np.any(np.abs(distance - 1.0) < 1e-5), "a transition lies on the goal threshold; pick another seed"
    reached = distance <= 1.0
    # reward of the transition as stored: -distance to nearest goal, +10 at a goal
    np.testing.assert_allclose(rewards, -distance + 10 * reached, atol=1e-4)
    # termination stored exactly when s' is at a goal
    np.testing.assert_array_equal(terminations, reached.astype(float))

    assert np.linalg.norm(obs[0]) < 0.5  # first row starts an episode (start ~ N(0, 0.1²))
    length, n_goal, n_timeout = 0, 0, 0
    for i in range(steps - 1):
        length += 1
        continues = np.allclose(next_obs[i], obs[i + 1], atol=1e-6)
        episode_ends = terminations[i] == 1 or length == 30
        assert continues != episode_ends, f"row {i}: episode step {length}, termination {terminations[i]}"
        if episode_ends:
            assert np.linalg.norm(obs[i + 1]) < 0.5, f"row {i + 1} should be a start state"
            if terminations[i] == 1:
                n_goal += 1
            else:  # truncation at 30 steps: stored with termination 0, so it bootstraps
                assert length == 30 and not reached[i]
                n_timeout += 1
            length = 0
    assert n_goal >= 1 and n_timeout >= 1, f"need both kinds of episode end, got {n_goal} goals, {n_timeout} timeouts"


# --------------------------------------------------------------- 8. transitions_to_store
def test_transitions_to_store_hand_built_infos():
    next_obs = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]], dtype=np.float32)
    original = next_obs.copy()
    infos = {"final_obs": np.array([None, np.array([9.0, 8.0], dtype=np.float32), None], dtype=object),
             "_final_obs": np.array([False, True, False]),
             "episode": {"r": np.zeros(3)}, "_episode": np.array([False, True, False])}
    stored = transitions_to_store(next_obs, infos)
    np.testing.assert_array_equal(stored, [[1.0, 1.0], [9.0, 8.0], [3.0, 3.0]])
    assert stored.dtype == np.float32
    np.testing.assert_array_equal(next_obs, original)  # the next step's observations are untouched
    # two envs finishing at once
    infos2 = {"final_obs": np.array([np.array([5.0, 5.0]), None, np.array([6.0, 6.0])], dtype=object),
              "_final_obs": np.array([True, False, True])}
    np.testing.assert_array_equal(transitions_to_store(next_obs, infos2), [[5.0, 5.0], [2.0, 2.0], [6.0, 6.0]])
    # no episode ended
    np.testing.assert_array_equal(transitions_to_store(next_obs, {}), original)


def test_make_envs_is_same_step_autoreset():
    # The infos transitions_to_store reads exist: at the step that ends an episode the vector
    # env returns the NEXT episode's first observation and the last one in final_obs.
    envs = make_envs("MultiGoal-v0", 2)
    obs, _ = envs.reset(seed=0)
    for _ in range(30):
        last = obs
        obs, _, terminations, truncations, infos = envs.step(np.zeros((2, 2), dtype=np.float32))
    envs.close()
    assert truncations.all() and not terminations.any()
    assert infos["_final_obs"].all()
    np.testing.assert_allclose(np.stack(infos["final_obs"]), last, atol=1e-6)  # zero action: last position kept
    stored = transitions_to_store(obs, infos)
    np.testing.assert_allclose(stored, last, atol=1e-6)
    assert not np.allclose(obs, last)


# ------------------------------------------------------------------------ replay buffer
def test_replay_buffer_ring_sample_and_state():
    rb = ReplayBuffer(Batch, 5, 3, torch.device("cpu"))  # three envs side by side, five rows

    def add(values):  # one step of the three envs; every field encodes the value
        v = np.asarray(values, dtype=np.float32)
        rb.add(obs=np.stack([v, -v], 1), actions=v[:, None] + 0.5, rewards=v + 1000, next_obs=np.stack([v + 100, -v], 1),
               terminations=v % 2 == 0)

    add([0, 10, 20])
    add([1, 11, 21])
    assert (rb.pos, rb.size) == (2, 2)
    batch = rb.sample(500)
    assert batch.obs.shape == (3, 500, 2) and batch.rewards.shape == (3, 500) and batch.obs.dtype == torch.float32
    # only stored rows are sampled, all of them, each env's from its own column, every field from one row
    for m in range(3):
        assert set(batch.obs[m, :, 0].tolist()) == {10.0 * m, 10.0 * m + 1}
    v = batch.obs[..., 0]
    torch.testing.assert_close(batch.next_obs[..., 0], v + 100)
    torch.testing.assert_close(batch.actions[..., 0], v + 0.5)
    torch.testing.assert_close(batch.rewards, v + 1000)
    torch.testing.assert_close(batch.terminations, (v % 2 == 0).float())

    for k in range(2, 6):  # wraps: rows 2, 3, 4, then row 0 is overwritten by 5
        add([k, 10 + k, 20 + k])
    assert (rb.pos, rb.size) == (1, 5)
    assert rb.state_dict()["obs"][:, 0, 0].tolist() == [5.0, 1.0, 2.0, 3.0, 4.0]
    assert set(rb.sample(500).obs[0, :, 0].tolist()) == {1.0, 2.0, 3.0, 4.0, 5.0}

    integer_obs = ReplayBuffer(Batch, 5, 3, torch.device("cpu"))  # an env with an integer Box: stored as floats
    integer_obs.add(obs=np.ones((3, 2), dtype=np.int64), actions=np.zeros((3, 1)), rewards=np.zeros(3),
                    next_obs=np.ones((3, 2), dtype=np.int64), terminations=np.zeros(3, dtype=bool))
    assert integer_obs.sample(2).obs.dtype == torch.float32 and integer_obs.sample(2).terminations.dtype == torch.float32

    copy = ReplayBuffer(Batch, 5, 3, torch.device("cpu"))
    copy.load_state_dict(rb.state_dict())
    assert (copy.pos, copy.size) == (rb.pos, rb.size) and torch.equal(copy.storage, rb.storage)
    rows = rb.rows(50)
    for loaded, stored in zip(copy.batch(rows), rb.batch(rows)):
        assert torch.equal(loaded, stored)


# -------------------------------------------------------------------------- determinism
def test_same_seed_same_numbers(tmp_path, monkeypatch):
    # SPEC §2: the same --seed on CPU gives the same numbers; another seed gives others.
    kwargs = dict(total_timesteps=200, learning_starts=100, hidden_dim=16, batch_size=32, buffer_size=500,
                  eval_episodes=2, checkpoint_every=200)
    runs = [run_main(tmp_path / name, monkeypatch, seed=seed, **kwargs) for name, seed in (("a", 4), ("b", 4), ("c", 5))]
    (res_a, dir_a), (res_b, dir_b), (res_c, dir_c) = runs
    ck_a, ck_b, ck_c = (torch.load(d / "checkpoint.pt", weights_only=False) for d in (dir_a, dir_b, dir_c))
    assert res_a["per_z"] == res_b["per_z"]
    for name in Batch._fields:
        assert torch.equal(ck_a["buffer"][name], ck_b["buffer"][name])
    for name, value in ck_a["agent"]["actor"].items():
        assert torch.equal(value, ck_b["agent"]["actor"][name])
    assert not torch.equal(ck_a["buffer"]["obs"], ck_c["buffer"]["obs"])
    assert res_a["per_z"][0]["returns"] != res_c["per_z"][0]["returns"]


# ------------------------------------------------------------------- 9. bad input (CLI)
def run_script(args, cwd):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def write_truncated_checkpoint(path):
    torch.save({"script": "sac_continuous", "x": torch.zeros(1000)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# SHORT keeps a run short if the check under test were missing (instead of a 1M-step run).
SHORT = ["--total-timesteps", "50", "--learning-starts", "10", "--eval-episodes", "0", "--hidden-dim", "8"]
BAD_INPUTS = {
    "unknown-env": ["--env-id", "NoSuchEnv-v0", *SHORT],
    "discrete-actions": ["--env-id", "CartPole-v1", *SHORT],
    "zero-steps": ["--env-id", "MultiGoal-v0", "--total-timesteps", "0"],
    "negative-steps": ["--env-id", "MultiGoal-v0", "--total-timesteps", "-5"],
    "zero-batch": ["--env-id", "MultiGoal-v0", "--batch-size", "0", *SHORT],
    "zero-buffer": ["--env-id", "MultiGoal-v0", "--buffer-size", "0", *SHORT],
    "missing-resume": ["--resume", "does/not/exist.pt"],
    "garbage-resume": ["--resume", "garbage.pt"],
    "text-resume": ["--resume", "text.pt"],
    "truncated-resume": ["--resume", "truncated.pt"],
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_error(case, tmp_path):
    (tmp_path / "garbage.pt").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "text.pt").write_bytes(b"not a checkpoint\nsecond line\n")
    write_truncated_checkpoint(tmp_path / "truncated.pt")
    proc = run_script(BAD_INPUTS[case], tmp_path)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    # No Hopper here (the default env id is not reached): gymnasium prints no warning lines.
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("sac_continuous.py: error:"), proc.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


# ---------------------------------------------------------------------- 10. smoke runs
def check_eval_json(path, env_id, episodes, multigoal):
    result = json.loads(path.read_text())
    assert result["env_id"] == env_id and result["seed"] == 1 and result["global_step"] == 300
    assert result["num_z"] == 1 and len(result["per_z"]) == 1
    entry = result["per_z"][0]
    assert entry["z"] == 0 and len(entry["returns"]) == episodes
    assert all(isinstance(r, float) and math.isfinite(r) for r in entry["returns"])
    assert entry["mean"] == pytest.approx(np.mean(entry["returns"]))
    assert entry["std"] == pytest.approx(np.std(entry["returns"]))
    assert result["avg"] == pytest.approx(entry["mean"]) and result["max"] == pytest.approx(entry["mean"])
    if multigoal:
        assert len(entry["goals"]) == episodes and set(entry["goals"]) <= {-1, 0, 1, 2, 3}
        assert all(type(g) is int for g in entry["goals"])
    else:
        assert "goals" not in entry
    return result


def check_tensorboard(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert list(run_dir.glob("events.out.tfevents*"))
    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    for tag in ("charts/episodic_return", "losses/qf_loss"):
        assert tag in tags, f"{tag} missing from {tags}"
        assert all(math.isfinite(e.value) for e in acc.Scalars(tag))


COMMON = ["--total-timesteps", "300", "--learning-starts", "100", "--hidden-dim", "32", "--batch-size", "64"]


def test_smoke_multigoal_and_saved_model(tmp_path):
    # on the CPU: the saved model is compared bit for bit with a CPU evaluation
    proc = run_script(["--env-id", "MultiGoal-v0", *COMMON, "--eval-episodes", "3", "--save-model", "--no-cuda"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    result = check_eval_json(run_dir / "eval.json", "MultiGoal-v0", 3, multigoal=True)
    check_tensorboard(run_dir)

    model_path = run_dir / "sac_continuous.pt"
    assert model_path.exists()
    agent, args = load_model(str(model_path))
    actor, qf = agent.actor, agent.qf
    assert isinstance(actor, Actor) and isinstance(qf, TwinQNetwork)
    assert args.env_id == "MultiGoal-v0" and args.hidden_dim == 32 and args.total_timesteps == 300
    obs = torch.randn(4, 2)
    assert actor.deterministic(obs).shape == (4, 2) and qf(obs, torch.zeros(4, 2)).shape == (2, 4)
    assert not actor.training and not qf.training
    # the saved weights are the final ones: same as the end-of-run checkpoint's ...
    final = torch.load(run_dir / "checkpoint.pt", weights_only=False)["agent"]
    for name, value in final["actor"].items():
        torch.testing.assert_close(actor.state_dict()[name], value, rtol=0, atol=0)
    for name, value in final["qf"].items():
        torch.testing.assert_close(qf.state_dict()[name], value, rtol=0, atol=0)
    # ... and they reproduce the evaluation written to eval.json exactly
    deterministic = lambda obs, z: actor.deterministic(obs)  # noqa: E731
    again = evaluation.evaluate(deterministic, make_envs, "MultiGoal-v0", 1, 3, args.seed + 10_000, torch.device("cpu"))[0]
    assert again["returns"] == pytest.approx(result["per_z"][0]["returns"], abs=1e-9)
    assert again["goals"] == result["per_z"][0]["goals"]


def test_smoke_hopper(tmp_path):
    proc = run_script(["--env-id", "Hopper-v4", *COMMON, "--eval-episodes", "2"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr  # (gymnasium's Hopper-v4 deprecation warning is allowed)
    (run_dir,) = (tmp_path / "runs").iterdir()
    check_eval_json(run_dir / "eval.json", "Hopper-v4", 2, multigoal=False)
    check_tensorboard(run_dir)


# ------------------------------------------------------------------------- 11. learning
def test_learns_to_reach_a_goal(tmp_path, monkeypatch):
    # Budget: 2000 updates after 1000 random steps; ~7-13 s on one busy core. Seeds 1-10 all
    # reached a goal in 10/10 episodes with these settings; half the budget (1500 steps)
    # already gives 7-10/10.
    result, run_dir = run_main(tmp_path, monkeypatch, seed=1, hidden_dim=64, total_timesteps=3000,
                               learning_starts=1000, buffer_size=10_000, eval_episodes=10, checkpoint_every=0)
    goals = result["per_z"][0]["goals"]
    assert sum(g != -1 for g in goals) >= 9, goals
    assert result["avg"] > -10, result["avg"]  # a random policy scores about -100
    assert json.loads((run_dir / "eval.json").read_text()) == result
