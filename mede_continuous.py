"""MEDE: Maximum Entropy Diverse Exploration (the paper's algorithm), CleanRL style.

|Z| policies π(a|s, z) learn one task together. Each is a maximum-entropy agent (SAC) whose entropy
bonus is traded against being recognisable: a discriminator q_ρ(z|s, a) guesses z from the
state-action pair, and each policy maximises (paper Eq. 12)

    J(π_z) = E[ Σ_t r_t - α log π(a_t|s_t, z) + α β log q_ρ(z|s_t, a_t) ].

The discriminator enters like a prior on actions, so its gradient ∇_a log q_ρ reaches the actor
through the reparameterised action (paper §4).

    python mede_continuous.py --env-id Hopper-v4 --num-z 4
    python mede_continuous.py --env-id MultiDirectionAnt-v0 --num-z 4 --separate-networks \
        --hidden-dim 128 --alpha 1 --reward-scale 5

Read top to bottom: the arguments, the algorithm (the paper's losses, one update), its machinery
(environment, networks) and `main()`. Shared networks (z a one-hot input, drawn from p(z) every episode)
and `--separate-networks` (appendix B: every z its own actor, critics, env and buffer) are one code:
every network is an ensemble of M = 1 or |Z| members, every batch [M, batch, ...].
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # off-screen MuJoCo rendering; read when mujoco is imported

import copy
import math
from dataclasses import dataclass
from typing import NamedTuple

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import multidirection_ant  # noqa: F401  (registers MultiDirectionAnt-v0)
import multigoal_env  # noqa: F401  (registers MultiGoal-v0 and MultiGoalTwo-v0)
from run_utils import checkpoint, cli
from run_utils.buffer import ReplayBuffer
from run_utils.cli import MeasureArgs, UsageError
from run_utils.hardware import autocast
from run_utils.run import Run

SCRIPT = cli.script_name(__file__)  # "mede_continuous", or the name of a copy
MEASUREMENTS = ("log_q_z_given_sa", "log_q_z_given_s", "accuracy_z_given_sa", "accuracy_z_given_s")
SAVED_NETWORKS = ("actor", "qf", "disc_sa", "disc_s")  # what --save-model keeps


@dataclass
class Args(MeasureArgs):  # + run_utils' flags: --seed, --threads, --checkpoint-every, --resume, --measure-every...
    exp_name: str = SCRIPT
    """the name of this experiment (part of the run name)"""
    env_id: str = "Hopper-v4"
    """a gymnasium id (or module:Id) with Box actions, e.g. MultiGoal-v0; Hopper-v4 is the paper's version (v5 works)"""
    total_timesteps: int = 1000000
    """total environment steps of the experiment, summed over all envs (rounded down to a multiple of them)"""
    num_z: int = 4
    """|Z|, the number of latent values z (policies); at least 2"""
    separate_networks: bool = False
    """if toggled, every z has its own actor, critics, env and replay buffer (paper appendix B)"""
    disc_coef: float = 1.0
    """beta, the weight of log q(z|s,a) against log pi (beta = 1 is the paper)"""
    disc_grad: bool = True
    """if toggled, the gradient of log q(z|s,a) reaches the actor through the action (--no-disc-grad: ablation)"""
    reward_scale: float = 1.0
    """c, the scale of the environment reward in the critic target"""
    buffer_size: int = 1000000
    """the replay memory capacity (transitions), split evenly across agents with --separate-networks"""
    gamma: float = 0.99
    """the discount factor gamma"""
    tau: float = 0.005
    """target smoothing coefficient: Q_target <- (1 - tau) Q_target + tau Q"""
    batch_size: int = 256
    """the batch size of each gradient step (per agent with --separate-networks)"""
    learning_starts: int = 5000
    """environment steps (summed over envs) of uniformly random actions before learning starts"""
    policy_lr: float = 3e-4
    """the learning rate of the policy network optimizer"""
    q_lr: float = 3e-4
    """the learning rate of the Q network optimizer (and of alpha when autotuned)"""
    disc_lr: float = 3e-4
    """the learning rate of the discriminators"""
    policy_frequency: int = 1
    """the policy is trained every `policy_frequency` updates, `policy_frequency` times"""
    target_network_frequency: int = 1
    """the frequency (in updates) of the target networks update"""
    alpha: float = 0.3
    """the entropy temperature alpha (its initial value when autotuned)"""
    autotune: bool = False
    """automatic tuning of alpha towards the target entropy -dim(A) (one alpha shared by all z)"""
    hidden_dim: int = 300
    """width of the two hidden layers of the actor and of each critic"""
    disc_hidden_dim: int = 256
    """width of the two hidden layers of the discriminators"""


def check_args(args: Args) -> None:
    cli.require(args, non_negative=["learning_starts", "disc_coef", "reward_scale", "gamma"],
                positive=["total_timesteps", "buffer_size", "batch_size", "policy_frequency", "q_lr", "disc_lr",
                          "target_network_frequency", "hidden_dim", "disc_hidden_dim", "policy_lr", "tau", "alpha"],
                at_most_one=["gamma", "tau"])
    if args.num_z < 2:
        raise UsageError(f"--num-z must be at least 2 (MEDE learns |Z| distinct policies), got {args.num_z}")
    for name in ("batch_size", "total_timesteps", "buffer_size") if args.separate_networks else ():
        if getattr(args, name) < args.num_z:  # every agent needs its share
            raise UsageError(f"{cli.flag(name)} ({getattr(args, name)}) must be at least --num-z ({args.num_z})")


# ----------------------------------------------------------------------------------- losses
# ALGO LOGIC: the paper's objective. Everything MEDE adds to SAC is `diversity_log_prior`.
def diversity_log_prior(disc_sa: Discriminator, obs: torch.Tensor, actions: torch.Tensor, z: torch.Tensor,
                        beta: float, train_params: bool = True) -> torch.Tensor:
    """β log q_ρ(z|s, a), the discriminator as a prior on actions (paper Eqs. 6 and 12), next to -log π(a|s, z)
    in the critic target and the actor loss. `train_params=False`: the discriminator's weights get no gradient."""
    return beta * disc_sa.log_prob(torch.cat([obs, actions], -1), z, train_params)


@torch.no_grad()
def critic_target(qf_target: TwinQNetwork, actor: Actor, disc_sa: Discriminator, batch: Batch, alpha: torch.Tensor,
                  beta: float, reward_scale: float, gamma: float) -> torch.Tensor:
    """The soft Bellman target of Eq. 6, a' ~ π(·|s', z):
        y = c·r + γ(1 - d)(min_j Q̄_j(s', a', z) - α(log π(a'|s', z) - β log q_ρ(z|s', a')))."""
    next_actions, next_log_pi = actor.sample(batch.next_obs, batch.z)
    log_prior = diversity_log_prior(disc_sa, batch.next_obs, next_actions, batch.z, beta)
    next_v = qf_target(batch.next_obs, batch.z, next_actions).min(0).values - alpha * (next_log_pi - log_prior)
    return reward_scale * batch.rewards + gamma * (1 - batch.terminations) * next_v


# COPY critic loss and discriminator batch: the same in every script with this block (tests/test_copies.py)
def critic_loss(qf: TwinQNetwork, batch: Batch, target: torch.Tensor):
    """Soft Bellman residual of both critics against y (§4, J_Q; sum over critics, members; batch mean; no ½)."""
    q = qf(batch.obs, batch.z, batch.actions)  # [2, M, B]
    per_critic = (q - target).pow(2).mean(-1).sum(-1)  # each member's own mean; members are independent
    info = {"qf1_values": q[0].mean(), "qf2_values": q[1].mean(),
            "qf1_loss": per_critic[0] / q.shape[1], "qf2_loss": per_critic[1] / q.shape[1]}
    return per_critic.sum(), info


def discriminator_batch(batch: Batch):
    """One batch of B transitions drawn across all members (B/M from each) for the discriminators."""
    members, size = batch.z.shape
    per_member = size // members
    take = lambda x: x[:, :per_member].reshape(members * per_member, *x.shape[2:])  # noqa: E731
    return take(batch.obs), take(batch.actions), take(batch.z)
# END COPY critic loss and discriminator batch


# COPY temperature loss and gradient step: the same in every script with this block (tests/test_copies.py)
def alpha_loss(log_alpha: torch.Tensor, log_pi: torch.Tensor, target_entropy: float):
    """J(α) = E[-α (log π + H̄)] (Haarnoja et al. 2018b §5): α rises while the policy's entropy is below H̄."""
    return (-log_alpha.exp() * (log_pi + target_entropy)).mean()


def descend(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:  # one gradient step on `loss`
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
# END COPY temperature loss and gradient step


def actor_loss(actor: Actor, qf: TwinQNetwork, disc_sa: Discriminator, obs: torch.Tensor, z: torch.Tensor,
               alpha: torch.Tensor, beta: float, disc_grad: bool):
    """J_π(φ) = E[α(log π(a|s, z) - β log q_ρ(z|s, a)) - min_j Q_j(s, a, z)], a = f_φ(ε; s, z) (§4). Critics
    and discriminator get no gradient; with `disc_grad`, ∇_a log q_ρ reaches the actor through a (else detached)."""
    actions, log_pi = actor.sample(obs, z)
    disc_actions = actions if disc_grad else actions.detach()
    log_prior = diversity_log_prior(disc_sa, obs, disc_actions, z, beta, train_params=False)
    q = qf(obs, z, actions, train_params=False).min(0).values
    return (alpha * (log_pi - log_prior) - q).mean(-1).sum(), log_pi.detach()


# ------------------------------------------------------------------------- the agent, its update
class MEDE:
    """The networks, their optimizers and the temperature; `update()` trains every member one step."""

    def __init__(self, obs_dim: int, act_dim: int, action_low, action_high, args: Args, device: torch.device):
        self.args, self.num_z, self.separate, self.precision = args, args.num_z, args.separate_networks, "float32"
        self.actor = Actor(args.num_z, args.separate_networks, obs_dim, act_dim, args.hidden_dim, action_low,
                           action_high).to(device)
        self.qf = TwinQNetwork(args.num_z, args.separate_networks, obs_dim, act_dim, args.hidden_dim).to(device)
        self.qf_target = copy.deepcopy(self.qf).requires_grad_(False)
        # q_ρ(z|s,a), MEDE's discriminator, and q(z|s), which only measures (Figure 2)
        self.disc_sa = Discriminator(obs_dim + act_dim, args.disc_hidden_dim, args.num_z).to(device)
        self.disc_s = Discriminator(obs_dim, args.disc_hidden_dim, args.num_z).to(device)
        # COPY optimizers: the same in every script with this block (tests/test_copies.py)
        cuda = device.type == "cuda"  # Adam `capturable` on CUDA: an update can be captured as a CUDA graph
        self.q_optimizer = torch.optim.Adam(self.qf.parameters(), lr=args.q_lr, fused=True, capturable=cuda)
        self.target_entropy = -float(act_dim)
        self.log_alpha = torch.full((1,), math.log(args.alpha), device=device, requires_grad=args.autotune)
        # Actor and α: one backward, one Adam step; α's loss uses the actor loss's log π (CleanRL: a new sample)
        policy_groups = [{"params": self.actor.parameters(), "lr": args.policy_lr}]
        if args.autotune:
            policy_groups.append({"params": [self.log_alpha], "lr": args.q_lr})
        self.actor_optimizer = torch.optim.Adam(policy_groups, fused=True, capturable=cuda)
        # END COPY optimizers
        disc_params = [*self.disc_sa.parameters(), *self.disc_s.parameters()]  # independent nets, one Adam
        self.disc_optimizer = torch.optim.Adam(disc_params, lr=args.disc_lr, fused=True, capturable=cuda)

    def update(self, batch: Batch, update_step: int) -> dict:
        """One training step: the critics and the discriminators; the actor (and α) every `policy_frequency`
        updates, that many times; the targets every `target_network_frequency`. Returns the losses, as tensors."""
        args = self.args
        alpha = self.log_alpha.detach().exp()
        target = critic_target(self.qf_target, self.actor, self.disc_sa, batch, alpha, args.disc_coef,
                               args.reward_scale, args.gamma)
        qf_loss, info = critic_loss(self.qf, batch, target)
        descend(self.q_optimizer, qf_loss)
        info["qf_loss"] = qf_loss.detach() / (2 * batch.z.shape[0])  # CleanRL's tag: (qf1 + qf2) / 2

        obs, actions, z = discriminator_batch(batch)
        disc_sa_loss, log_q_sa, accuracy_sa = self.disc_sa.loss(torch.cat([obs, actions], -1), z)
        disc_s_loss, log_q_s, accuracy_s = self.disc_s.loss(obs, z)
        descend(self.disc_optimizer, disc_sa_loss + disc_s_loss)
        info.update({"disc_sa_loss": disc_sa_loss.detach(), "disc_s_loss": disc_s_loss.detach(),
                     "log_q_z_given_sa": log_q_sa, "log_q_z_given_s": log_q_s,
                     "accuracy_z_given_sa": accuracy_sa, "accuracy_z_given_s": accuracy_s})

        for _ in range(args.policy_frequency if update_step % args.policy_frequency == 0 else 0):
            pi_loss, log_pi = actor_loss(self.actor, self.qf, self.disc_sa, batch.obs, batch.z, alpha,
                                         args.disc_coef, args.disc_grad)
            info["actor_loss"] = pi_loss.detach() / batch.z.shape[0]
            if args.autotune:
                a_loss = alpha_loss(self.log_alpha, log_pi, self.target_entropy)
                info["alpha_loss"] = a_loss.detach()
                pi_loss = pi_loss + a_loss
            descend(self.actor_optimizer, pi_loss)
            alpha = self.log_alpha.detach().exp()
        info["alpha"] = alpha

        if update_step % args.target_network_frequency == 0:  # Q̄ <- (1 - τ) Q̄ + τ Q
            with torch.no_grad():
                for target, online in zip(self.qf_target.parameters(), self.qf.parameters()):
                    target.lerp_(online, args.tau)
        return info

    # COPY acting and state: the same in every script with this block (tests/test_copies.py)
    def act(self, obs: torch.Tensor, z: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """Actions for N envs: obs [N, obs_dim], z [N] -> [N, act_dim]. With separate networks the
        envs are grouped by z (env i of N runs z = i // (N / |Z|)), so member m sees its own envs."""
        members = self.num_z if self.separate else 1
        obs, z = obs.view(members, -1, obs.shape[-1]), z.view(members, -1)
        actions = self.actor.deterministic(obs, z) if deterministic else self.actor.sample(obs, z)[0]
        return actions.reshape(-1, actions.shape[-1])

    def policy(self, obs, z: int = 0, deterministic: bool = True) -> np.ndarray:
        """The action of policy z for one observation as `env.reset()` or `env.step()` return it (obs [obs_dim]
        -> action [act_dim], numpy): the mean action, or a sample, in the precision the model trained in."""
        if not 0 <= z < self.num_z:
            raise ValueError(f"z = {z}, but this model has |Z| = {self.num_z}: z is one of 0..{self.num_z - 1}")
        members, device = self.num_z if self.separate else 1, self.log_alpha.device
        obs = torch.as_tensor(obs, dtype=torch.float32, device=device).reshape(1, -1)
        zs = torch.arange(members, device=device) if self.separate else torch.full((1,), z, device=device)
        with torch.inference_mode(), autocast(device, self.precision):  # separate networks: member z's action
            actions = self.act(obs.expand(members, -1), zs, deterministic)
        return actions[z if self.separate else 0].cpu().numpy()

    def modules(self) -> dict:
        """Everything with a state, by name (checkpoints hold them all)."""
        return {"actor": self.actor, "qf": self.qf, "qf_target": self.qf_target, "disc_sa": self.disc_sa,
                "disc_s": self.disc_s, "q_optimizer": self.q_optimizer, "actor_optimizer": self.actor_optimizer,
                "disc_optimizer": self.disc_optimizer, "log_alpha": self.log_alpha}
    # END COPY acting and state


def load_model(path: str, device: str | torch.device = "cpu"):
    """A `--save-model` file (or a checkpoint) as (agent, args), e.g. to act with `agent.policy`."""
    return checkpoint.load_model(path, SCRIPT, Args, MEDE, SAVED_NETWORKS, device)


# ----------------------------------------------------------------------------- environment
# COPY environment: the same in every script with this block (tests/test_copies.py)
def make_envs(env_id: str, num_envs: int) -> gym.vector.VectorEnv:
    """`num_envs` copies of `env_id`, SAME_STEP autoreset: when an episode ends, `step` returns the
    next episode's first observation and the finished one's last in `infos["final_obs"]`."""
    try:
        envs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync",
                            vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP})
    except (gym.error.Error, ImportError) as error:  # an unknown id, or module:Id with no such module
        raise UsageError(f"cannot make environment '{env_id}': {error}") from None
    cli.require_flat_box_spaces(envs, env_id, SCRIPT)
    return gym.wrappers.vector.RecordEpisodeStatistics(envs)


def transitions_to_store(next_obs: np.ndarray, infos: dict) -> np.ndarray:
    """Each env's s': `next_obs`, but for an ended episode its true last observation (not the next one's first)."""
    real_next_obs = next_obs.copy()
    for i in np.flatnonzero(infos.get("_final_obs", [])):
        real_next_obs[i] = infos["final_obs"][i]
    return real_next_obs
# END COPY environment


# --------------------------------------------------------------------- what the buffer stores
# COPY batch and z networks: the same in every script with this block (tests/test_copies.py)
class Batch(NamedTuple):  # a step of the M envs, or a batch from the replay buffer (run_utils.buffer)
    obs: torch.Tensor  # [M, B, obs_dim]
    actions: torch.Tensor  # [M, B, act_dim]
    rewards: torch.Tensor  # [M, B]
    next_obs: torch.Tensor  # [M, B, obs_dim]
    terminations: torch.Tensor  # [M, B], 1.0 where s' is terminal (no bootstrap); truncations are 0
    z: torch.Tensor  # [M, B], int64: the z that acted


# --------------------------------------------------------------------------------- networks
def policy_input(obs: torch.Tensor, z: torch.Tensor, num_z: int, separate: bool) -> torch.Tensor:
    """How z enters π and Q: [s, one_hot(z)] when shared (§4); s alone when separate: z is the member (app. B)."""
    return obs if separate else torch.cat([obs, F.one_hot(z, num_z).to(obs.dtype)], dim=-1)


class Actor(nn.Module):
    """Tanh-squashed Gaussian policies π_φ(a|s, z) (one member per z, or one for all), scaled to the bounds."""

    LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0

    def __init__(self, num_z: int, separate: bool, obs_dim: int, act_dim: int, hidden_dim: int, low, high):
        super().__init__()
        self.num_z, self.separate = num_z, separate
        in_dim = obs_dim if separate else obs_dim + num_z
        self.net = EnsembleMLP(num_z if separate else 1, [in_dim, hidden_dim, hidden_dim, 2 * act_dim])  # μ, log σ
        low, high = (torch.as_tensor(x, dtype=torch.float32) for x in (low, high))
        self.register_buffer("action_scale", (high - low) / 2)
        self.register_buffer("action_bias", (high + low) / 2)

    def forward(self, obs: torch.Tensor, z: torch.Tensor):
        mean, log_std = self.net(policy_input(obs, z, self.num_z, self.separate)).chunk(2, dim=-1)
        log_std = self.LOG_STD_MIN + 0.5 * (self.LOG_STD_MAX - self.LOG_STD_MIN) * (torch.tanh(log_std) + 1)
        return mean, log_std

    def sample(self, obs: torch.Tensor, z: torch.Tensor):
        """a = f_φ(ε; s, z) = tanh(μ + σ·ε)·scale + bias, ε ~ N(0, I), and log π(a|s, z) =
        log N(u; μ, σ) - Σ log(scale·(1 - tanh(u)²)), u = μ + σ·ε, written out (no torch.distributions)
        with log(1 - tanh(u)²) = 2·(log 2 - u - softplus(-2u))."""
        mean, log_std = self(obs, z)
        noise = torch.randn_like(mean)
        pre_tanh = mean + log_std.exp() * noise
        action = torch.tanh(pre_tanh) * self.action_scale + self.action_bias
        log_gaussian = -0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)
        log_det_jacobian = 2 * (math.log(2) - pre_tanh - F.softplus(-2 * pre_tanh)) + self.action_scale.log()
        return action, (log_gaussian - log_det_jacobian).sum(-1)

    def deterministic(self, obs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The mean action tanh(μ)·scale + bias, used for evaluation."""
        return torch.tanh(self(obs, z)[0]) * self.action_scale + self.action_bias


class TwinQNetwork(nn.Module):
    """Q_1(s, a, z) and Q_2(s, a, z) of each of the M members as ONE ensemble of 2M MLPs."""

    def __init__(self, num_z: int, separate: bool, obs_dim: int, act_dim: int, hidden_dim: int):
        super().__init__()
        self.num_z, self.separate = num_z, separate
        in_dim = (obs_dim if separate else obs_dim + num_z) + act_dim
        self.net = EnsembleMLP(2 * (num_z if separate else 1), [in_dim, hidden_dim, hidden_dim, 1])

    def forward(self, obs: torch.Tensor, z: torch.Tensor, actions: torch.Tensor, train_params: bool = True):
        """[2, M, B]: both critics of every member; `train_params=False`: gradient to the actions only."""
        x = torch.cat([policy_input(obs, z, self.num_z, self.separate), actions], dim=-1)  # [M, B, in]
        return self.net(x.repeat(2, 1, 1), train_params).view(2, *x.shape[:2])


class Discriminator(nn.Module):
    """q(z|x), z from x = [s, a] (q_ρ(z|s,a)) or x = s (q(z|s)): one MLP for all members, |Z| logits."""

    def __init__(self, in_dim: int, hidden_dim: int, num_z: int):
        super().__init__()
        self.net = EnsembleMLP(1, [in_dim, hidden_dim, hidden_dim, num_z])

    def logits(self, x: torch.Tensor, train_params: bool = True) -> torch.Tensor:  # x [..., in] -> [..., |Z|]
        return self.net(x.reshape(1, -1, x.shape[-1]), train_params).view(*x.shape[:-1], -1)

    def log_prob(self, x: torch.Tensor, z: torch.Tensor, train_params: bool = True) -> torch.Tensor:
        """log q(z|x) of the given z; x [..., in_dim], z [...] -> [...]."""
        return self.logits(x, train_params).log_softmax(-1).gather(-1, z.unsqueeze(-1)).squeeze(-1)

    def loss(self, x: torch.Tensor, z: torch.Tensor):
        """Its loss E[-log q(z|x)] of the true z (§4, maximum likelihood of ρ), the mean log q(z|x), the accuracy."""
        logits = self.logits(x)
        log_q = -F.cross_entropy(logits, z, reduction="none")
        accuracy = (logits.argmax(-1) == z).float().mean()
        return -log_q.mean(), log_q.detach().mean(), accuracy
# END COPY batch and z networks


# COPY ensemble layer: the same in every script with this block (tests/test_copies.py)
class EnsembleMLP(nn.Module):
    """`members` independent MLPs (ReLU between layers), weights stacked as [members, fan_in, fan_out]:
    [members, B, sizes[0]] -> [members, B, sizes[-1]], all members in one batched matmul per layer."""

    def __init__(self, members: int, sizes: list[int]):
        super().__init__()
        layers = list(zip(sizes[:-1], sizes[1:]))
        self.weights = nn.ParameterList(nn.Parameter(torch.empty(members, n_in, n_out)) for n_in, n_out in layers)
        self.biases = nn.ParameterList(nn.Parameter(torch.empty(members, 1, n_out)) for _, n_out in layers)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """nn.Linear's default initialisation, U(-1/√fan_in, 1/√fan_in), layer by layer."""
        for weight, bias in zip(self.weights, self.biases):
            for tensor in (weight, bias):
                nn.init.uniform_(tensor, -weight.shape[1] ** -0.5, weight.shape[1] ** -0.5)

    def forward(self, x: torch.Tensor, train_params: bool = True) -> torch.Tensor:
        """`train_params=False` detaches the weights (a loss sends gradient to `x` only). Under --bf16 the hidden
        layers multiply in bf16, the output layer in float32: a Q of 300 is not rounded to the nearest 2."""
        last = len(self.weights) - 1
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            if not train_params:
                weight, bias = weight.detach(), bias.detach()
            if i < last:
                x = torch.relu(torch.baddbmm(bias, x, weight))
            else:
                with torch.autocast(x.device.type, enabled=False):
                    x = torch.baddbmm(bias, x.float(), weight)
        return x
# END COPY ensemble layer


# ------------------------------------------------------------------------------------ main
# COPY main, with MEDE -> DIAYN in diayn_continuous.py: the same in both (tests/test_copies.py)
def main(args: Args) -> dict | None:
    """Train, evaluate, and return the evaluation (the content of eval.json)."""
    check_args(args)
    run = Run(args, __file__)  # TRY NOT TO MODIFY: seeds, threads, device; --resume's checkpoint
    device = run.device

    num_envs = args.num_z if args.separate_networks else 1  # separate networks: env i runs z = i
    envs = make_envs(args.env_id, num_envs)
    dims = checkpoint.env_dims(envs)  # obs_dim, act_dim, action_low, action_high
    agent = MEDE(**dims, args=args, device=device)
    rb = ReplayBuffer(Batch, args.buffer_size // num_envs, num_envs, device)  # env i's steps in column i
    z_rng = run.seeds.rng("z")  # draws z ~ p(z) at the start of every episode, on a random stream of its own
    z = np.arange(num_envs) if args.separate_networks else z_rng.integers(args.num_z, size=num_envs)
    total_steps = args.total_timesteps // num_envs * num_envs  # every iteration steps every env once
    obs, start_step = run.start(agent, rb, envs, dims, total_steps, z=z, z_rng=z_rng)  # seeds and resets envs
    # Acting and the update as the run computes them: with --compile through torch.compile; on CUDA as CUDA
    # graphs (--cuda-graphs), the update one per schedule (does a step train the actor, update the targets?),
    # each taking its batch's rows and gathering the batch from the buffer
    act = run.compiled(agent.act, key=lambda obs, z: "act")
    train = run.compiled(lambda rows, step: agent.update(rb.batch(rows), step),
                         key=lambda rows, step: (step % args.policy_frequency == 0,
                                                 step % args.target_network_frequency == 0))

    with run.training():  # TRY NOT TO MODIFY: SIGINT/SIGTERM -> checkpoint and exit; NaN -> stop
        for global_step in range(start_step, total_steps, num_envs):
            run.measure(global_step, agent.act, make_envs, args.num_z, disc_sa=agent.disc_sa, disc_s=agent.disc_s)
            # ALGO LOGIC: act
            if global_step < args.learning_starts:
                actions = envs.action_space.sample()
            else:
                with torch.inference_mode(), run.autocast():  # autocast: bf16 products under --bf16
                    actions = act(torch.as_tensor(obs, dtype=torch.float32, device=device),
                                  torch.as_tensor(z, device=device)).cpu().numpy()

            next_obs, rewards, terminations, truncations, infos = envs.step(actions)
            run.log.episodes(infos, global_step, z)
            # ALGO LOGIC: store (truncated transitions are stored with termination 0, so they bootstrap)
            rb.add(obs=obs, actions=actions, rewards=rewards, next_obs=transitions_to_store(next_obs, infos),
                   terminations=terminations, z=z)
            if not args.separate_networks:  # a new episode draws a new z
                ended = np.flatnonzero(terminations | truncations)
                z[ended] = z_rng.integers(args.num_z, size=len(ended))
            obs = next_obs

            if global_step >= args.learning_starts:  # ALGO LOGIC: update
                with run.autocast():
                    info = train(rb.rows(args.batch_size), global_step // num_envs)
                run.log_losses(info, global_step, global_step // num_envs, charts=MEASUREMENTS)
            run.step_done(global_step + num_envs, obs)  # progress, periodic checkpoint
        run.measure(total_steps, agent.act, make_envs, args.num_z, disc_sa=agent.disc_sa, disc_s=agent.disc_s)

    # TRY NOT TO MODIFY: --save-model, the evaluation (eval.json) and --capture-video
    deterministic = lambda obs, z: agent.act(obs, z, deterministic=True)  # noqa: E731
    result = run.finish(agent, SAVED_NETWORKS, deterministic, make_envs, "MEDE", args.num_z,
                        separate_networks=args.separate_networks, disc_coef=args.disc_coef)
    envs.close()
    return result
# END COPY main


if __name__ == "__main__":
    cli.main_guard(main, Args, __file__)
