"""The fast update (stacked twin critics, written-out log-probabilities, fused Adam, one
optimizer step for actor and temperature, detached-weight forward passes) computes the same
losses, gradients and new weights as a straightforward implementation (two nn.Sequential
critics, torch.distributions, one plain Adam per network, CleanRL's order of steps) on the
same batch with the same noise."""

import copy

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.distributions import Normal

import diayn_continuous as diayn
import mede_continuous as mede
import sac_continuous as sac

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


@pytest.fixture
def fixed_noise(monkeypatch):
    """torch.randn_like returns pre-drawn noise, in order, so both implementations see the same ε."""
    queue = []
    monkeypatch.setattr(torch, "randn_like", lambda x: queue.pop(0).clone())
    return queue


def sequential_from_stacked(weights, biases, member):
    """Member `member` of a stack of [members, in, out] weights as a plain nn.Sequential MLP."""
    layers = []
    for i, (w, b) in enumerate(zip(weights, biases)):
        linear = nn.Linear(w.shape[1], w.shape[2])
        with torch.no_grad():
            linear.weight.copy_(w[member].T)
            linear.bias.copy_(b[member, 0])
        layers += [linear, nn.ReLU()] if i < len(weights) - 1 else [linear]
    return nn.Sequential(*layers)


def reference_networks(agent):
    """The agent's actor, critics and targets as plain nn.Sequential copies (member 0; critics 0 and 1)."""
    actor = sequential_from_stacked(agent.actor.net.weights, agent.actor.net.biases, 0)
    critics = [sequential_from_stacked(agent.qf.net.weights, agent.qf.net.biases, j) for j in range(2)]
    return actor, critics, [copy.deepcopy(c) for c in critics]


def assert_same_weights(stacked, member: int, reference: nn.Sequential) -> None:
    """Member `member` of a stacked network has the reference network's weights (to float32 rounding)."""
    torch.testing.assert_close(sequential_from_stacked(stacked.weights, stacked.biases, member).state_dict(),
                               reference.state_dict(), rtol=1e-4, atol=1e-6)


def assert_same_grads(stacked, member: int, reference_grads: list) -> None:
    """Member `member` of a stacked network has the gradients of the reference (grads(reference), in order)."""
    fast = [g for w, b in zip(stacked.weights, stacked.biases) for g in (w.grad[member].T, b.grad[member, 0])]
    assert len(fast) == len(reference_grads)
    for mine, ref in zip(fast, reference_grads):
        torch.testing.assert_close(mine, ref, rtol=1e-4, atol=1e-6)


def reference_sample(net, obs, noise, scale, bias):
    """CleanRL's tanh-Gaussian with torch.distributions: action and log π(a|s)."""
    mean, log_std = net(obs).chunk(2, -1)
    log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(log_std) + 1)
    std = log_std.exp()
    normal = Normal(mean, std)
    pre_tanh = mean + std * noise  # = normal.rsample() with this ε
    squashed = torch.tanh(pre_tanh)
    log_prob = normal.log_prob(pre_tanh) - torch.log(scale * (1 - squashed.pow(2)))
    return squashed * scale + bias, log_prob.sum(-1)


def grads(module):
    return [p.grad.clone() for p in module.parameters()]


# ----------------------------------------------------------------------------------------- SAC
def test_sac_update_matches_a_straightforward_implementation(fixed_noise):
    torch.manual_seed(0)
    obs_dim, act_dim, batch_size = 5, 2, 16
    low, high = np.array([-2.0, -1.0]), np.array([2.0, 3.0])
    args = sac.Args(hidden_dim=32, policy_frequency=1, autotune=True, alpha=0.3)
    agent = sac.SAC(obs_dim, act_dim, low, high, args, torch.device("cpu"))
    scale, bias = agent.actor.action_scale, agent.actor.action_bias
    batch = sac.Batch(obs=torch.randn(batch_size, obs_dim), actions=torch.rand(batch_size, act_dim) * 2 - 1,
                      rewards=torch.randn(batch_size), next_obs=torch.randn(batch_size, obs_dim),
                      terminations=(torch.rand(batch_size) < 0.3).float())
    next_noise, noise = torch.randn(batch_size, act_dim), torch.randn(batch_size, act_dim)

    # The reference: separate critics and optimizers, built from the agent's initial weights.
    actor, critics, targets = reference_networks(agent)
    log_alpha = torch.tensor([np.log(0.3)], dtype=torch.float32, requires_grad=True)
    q_opt = torch.optim.Adam([p for c in critics for p in c.parameters()], lr=args.q_lr)
    pi_opt = torch.optim.Adam(actor.parameters(), lr=args.policy_lr)
    a_opt = torch.optim.Adam([log_alpha], lr=args.q_lr)

    alpha = log_alpha.exp().item()
    with torch.no_grad():
        next_a, next_log_pi = reference_sample(actor, batch.next_obs, next_noise, scale, bias)
        next_in = torch.cat([batch.next_obs, next_a], -1)
        next_q = torch.min(targets[0](next_in), targets[1](next_in)).view(-1) - alpha * next_log_pi
        y = batch.rewards + args.gamma * (1 - batch.terminations) * next_q
    x = torch.cat([batch.obs, batch.actions], -1)
    ref_qf_loss = F.mse_loss(critics[0](x).view(-1), y) + F.mse_loss(critics[1](x).view(-1), y)
    q_opt.zero_grad()
    ref_qf_loss.backward()
    ref_critic_grads = [p.grad.clone() for c in critics for p in c.parameters()]
    q_opt.step()
    pi, log_pi = reference_sample(actor, batch.obs, noise, scale, bias)
    x_pi = torch.cat([batch.obs, pi], -1)
    ref_actor_loss = (alpha * log_pi - torch.min(critics[0](x_pi), critics[1](x_pi)).view(-1)).mean()
    pi_opt.zero_grad()
    ref_actor_loss.backward()
    ref_actor_grads = grads(actor)
    pi_opt.step()
    ref_alpha_loss = (-log_alpha.exp() * (log_pi.detach() + agent.target_entropy)).mean()
    a_opt.zero_grad()
    ref_alpha_loss.backward()
    a_opt.step()
    with torch.no_grad():
        for target, critic in zip(targets, critics):
            for t, c in zip(target.parameters(), critic.parameters()):
                t.mul_(1 - args.tau).add_(args.tau * c)

    # The fast update, same batch, same noise.
    fixed_noise.extend([next_noise, noise])
    info = agent.update(batch, 0)
    assert info["qf_loss"].item() * 2 == pytest.approx(ref_qf_loss.item(), rel=1e-5)
    assert info["actor_loss"].item() == pytest.approx(ref_actor_loss.item(), rel=1e-5, abs=1e-6)
    assert info["alpha_loss"].item() == pytest.approx(ref_alpha_loss.item(), rel=1e-5, abs=1e-7)
    half = len(ref_critic_grads) // 2  # critic 0's, then critic 1's
    assert_same_grads(agent.qf.net, 0, ref_critic_grads[:half])
    assert_same_grads(agent.qf.net, 1, ref_critic_grads[half:])
    assert_same_grads(agent.actor.net, 0, ref_actor_grads)
    # ... and the same weights after the steps.
    for j in range(2):
        assert_same_weights(agent.qf.net, j, critics[j])
        assert_same_weights(agent.qf_target.net, j, targets[j])
    assert_same_weights(agent.actor.net, 0, actor)
    torch.testing.assert_close(agent.log_alpha.detach(), log_alpha.detach())


# ---------------------------------------------------------------------------------------- MEDE
def skill_batch(module, obs_dim: int, act_dim: int, num_z: int, batch_size: int):
    """A random batch of a skill script (MEDE or DIAYN), and the noise of its next and current actions."""
    batch = module.Batch(obs=torch.randn(1, batch_size, obs_dim), actions=torch.rand(1, batch_size, act_dim) * 2 - 1,
                         rewards=torch.randn(1, batch_size), next_obs=torch.randn(1, batch_size, obs_dim),
                         terminations=(torch.rand(1, batch_size) < 0.3).float(), z=torch.randint(num_z, (1, batch_size)))
    return batch, torch.randn(1, batch_size, act_dim), torch.randn(1, batch_size, act_dim)


def test_mede_update_matches_a_straightforward_implementation(fixed_noise):
    torch.manual_seed(1)
    obs_dim, act_dim, num_z, batch_size = 4, 2, 3, 12
    args = mede.Args(hidden_dim=24, disc_hidden_dim=20, num_z=num_z, alpha=0.5, disc_coef=2.0, reward_scale=3.0)
    agent = mede.MEDE(obs_dim, act_dim, np.array([-2.0, -1.0]), np.array([2.0, 3.0]), args, torch.device("cpu"))
    scale, bias = agent.actor.action_scale, agent.actor.action_bias
    batch, next_noise, noise = skill_batch(mede, obs_dim, act_dim, num_z, batch_size)
    z = batch.z
    actor, critics, targets = reference_networks(agent)
    disc = sequential_from_stacked(agent.disc_sa.net.weights, agent.disc_sa.net.biases, 0)
    state_disc = sequential_from_stacked(agent.disc_s.net.weights, agent.disc_s.net.biases, 0)
    q_opt = torch.optim.Adam([p for c in critics for p in c.parameters()], lr=args.q_lr)
    pi_opt = torch.optim.Adam(actor.parameters(), lr=args.policy_lr)
    d_opt = torch.optim.Adam([*disc.parameters(), *state_disc.parameters()], lr=args.disc_lr)

    s, a, s2, zz = batch.obs[0], batch.actions[0], batch.next_obs[0], z[0]
    one_hot = F.one_hot(zz, num_z).float()
    alpha, beta, c = 0.5, 2.0, 3.0
    with torch.no_grad():
        next_a, next_log_pi = reference_sample(actor, torch.cat([s2, one_hot], -1), next_noise[0], scale, bias)
        next_log_q = F.log_softmax(disc(torch.cat([s2, next_a], -1)), -1).gather(1, zz[:, None]).view(-1)
        next_in = torch.cat([s2, one_hot, next_a], -1)
        next_v = torch.min(targets[0](next_in), targets[1](next_in)).view(-1) - alpha * (next_log_pi - beta * next_log_q)
        y = c * batch.rewards[0] + args.gamma * (1 - batch.terminations[0]) * next_v
    x = torch.cat([s, one_hot, a], -1)
    ref_qf_loss = F.mse_loss(critics[0](x).view(-1), y) + F.mse_loss(critics[1](x).view(-1), y)
    q_opt.zero_grad()
    ref_qf_loss.backward()
    q_opt.step()
    ref_disc_loss = F.cross_entropy(disc(torch.cat([s, a], -1)), zz)
    ref_state_disc_loss = F.cross_entropy(state_disc(s), zz)
    d_opt.zero_grad()
    (ref_disc_loss + ref_state_disc_loss).backward()
    d_opt.step()
    pi, log_pi = reference_sample(actor, torch.cat([s, one_hot], -1), noise[0], scale, bias)
    log_q = F.log_softmax(disc(torch.cat([s, pi], -1)), -1).gather(1, zz[:, None]).view(-1)
    x_pi = torch.cat([s, one_hot, pi], -1)
    ref_actor_loss = (alpha * (log_pi - beta * log_q) - torch.min(critics[0](x_pi), critics[1](x_pi)).view(-1)).mean()
    pi_opt.zero_grad()
    ref_actor_loss.backward()
    ref_actor_grads = grads(actor)
    pi_opt.step()

    fixed_noise.extend([next_noise, noise])
    info = agent.update(batch, 0)
    assert info["qf_loss"].item() * 2 == pytest.approx(ref_qf_loss.item(), rel=1e-5)
    assert info["disc_sa_loss"].item() == pytest.approx(ref_disc_loss.item(), rel=1e-5)
    assert info["disc_s_loss"].item() == pytest.approx(ref_state_disc_loss.item(), rel=1e-5)
    assert info["actor_loss"].item() == pytest.approx(ref_actor_loss.item(), rel=1e-5, abs=1e-6)
    assert_same_grads(agent.actor.net, 0, ref_actor_grads)
    for mine, ref in ((agent.actor.net, actor), (agent.disc_sa.net, disc), (agent.disc_s.net, state_disc)):
        assert_same_weights(mine, 0, ref)
    for j in range(2):
        assert_same_weights(agent.qf.net, j, critics[j])


# --------------------------------------------------------------------------------------- DIAYN
@pytest.mark.parametrize("add_log_pz", [False, True])
def test_diayn_update_matches_a_straightforward_implementation(fixed_noise, add_log_pz):
    """DIAYN as the paper runs it: r̂ = c·r + β log q(z|s_t) (+ log |Z|) from the current q(z|s), the SAC
    target and actor loss with z one-hot in π and Q, and no gradient of the discriminator into the policy."""
    torch.manual_seed(2)
    obs_dim, act_dim, num_z, batch_size = 4, 2, 3, 12
    args = diayn.Args(hidden_dim=24, disc_hidden_dim=20, num_z=num_z, alpha=0.5, disc_coef=2.0, reward_scale=3.0,
                      add_log_pz=add_log_pz)
    agent = diayn.DIAYN(obs_dim, act_dim, np.array([-2.0, -1.0]), np.array([2.0, 3.0]), args, torch.device("cpu"))
    scale, bias = agent.actor.action_scale, agent.actor.action_bias
    batch, next_noise, noise = skill_batch(diayn, obs_dim, act_dim, num_z, batch_size)
    z = batch.z
    actor, critics, targets = reference_networks(agent)
    state_disc = sequential_from_stacked(agent.disc_s.net.weights, agent.disc_s.net.biases, 0)
    q_opt = torch.optim.Adam([p for c in critics for p in c.parameters()], lr=args.q_lr)
    pi_opt = torch.optim.Adam(actor.parameters(), lr=args.policy_lr)

    s, a, s2, zz = batch.obs[0], batch.actions[0], batch.next_obs[0], z[0]
    one_hot = F.one_hot(zz, num_z).float()
    alpha, beta, c = 0.5, 2.0, 3.0
    with torch.no_grad():
        log_q = F.log_softmax(state_disc(s), -1).gather(1, zz[:, None]).view(-1)  # q(z|s_t), on s_t
        r_hat = c * batch.rewards[0] + beta * (log_q + (np.log(num_z) if add_log_pz else 0.0))
        next_a, next_log_pi = reference_sample(actor, torch.cat([s2, one_hot], -1), next_noise[0], scale, bias)
        next_in = torch.cat([s2, one_hot, next_a], -1)
        next_v = torch.min(targets[0](next_in), targets[1](next_in)).view(-1) - alpha * next_log_pi
        y = r_hat + args.gamma * (1 - batch.terminations[0]) * next_v
    x = torch.cat([s, one_hot, a], -1)
    ref_qf_loss = F.mse_loss(critics[0](x).view(-1), y) + F.mse_loss(critics[1](x).view(-1), y)
    q_opt.zero_grad()
    ref_qf_loss.backward()
    q_opt.step()
    pi, log_pi = reference_sample(actor, torch.cat([s, one_hot], -1), noise[0], scale, bias)
    x_pi = torch.cat([s, one_hot, pi], -1)
    ref_actor_loss = (alpha * log_pi - torch.min(critics[0](x_pi), critics[1](x_pi)).view(-1)).mean()
    pi_opt.zero_grad()
    ref_actor_loss.backward()
    ref_actor_grads = grads(actor)
    pi_opt.step()
    ref_disc_loss = F.cross_entropy(state_disc(s), zz)

    fixed_noise.extend([next_noise, noise])
    info = agent.update(batch, 0)
    assert info["augmented_reward"].item() == pytest.approx(r_hat.mean().item(), rel=1e-5, abs=1e-6)
    assert info["qf_loss"].item() * 2 == pytest.approx(ref_qf_loss.item(), rel=1e-5)
    assert info["disc_s_loss"].item() == pytest.approx(ref_disc_loss.item(), rel=1e-5)
    assert info["actor_loss"].item() == pytest.approx(ref_actor_loss.item(), rel=1e-5, abs=1e-6)
    assert_same_grads(agent.actor.net, 0, ref_actor_grads)
    for j in range(2):
        assert_same_weights(agent.qf.net, j, critics[j])
    assert_same_weights(agent.actor.net, 0, actor)
