"""MEDE: Maximum Entropy Diverse Exploration (the paper's algorithm), CleanRL style.

|Z| policies π(a|s, z) learn one task together. Each is a maximum-entropy agent (SAC) whose
entropy bonus is traded against being recognisable: a discriminator q_ρ(z|s, a) guesses z
from the state-action pair, and each policy maximises (paper Eq. 12)

    J(π_z) = E[ Σ_t r_t - α log π(a_t|s_t, z) + α β log q_ρ(z|s_t, a_t) ].

The discriminator enters like a prior on actions, so its gradient ∇_a log q_ρ reaches the
actor through the reparameterised action (paper §4).

    python mede_continuous.py --env-id Hopper-v4 --num-z 4
    python mede_continuous.py --env-id MultiDirectionAnt-v0 --num-z 4 --separate-networks \
        --hidden-dim 128 --alpha 1 --reward-scale 5

Two ways to hold |Z| agents:
- shared (default): ONE actor and ONE pair of critics; z enters as a one-hot vector
  concatenated to the state; z is drawn from p(z) = 1/|Z| at the start of every episode;
- `--separate-networks` (paper appendix B): every z has its own actor, twin critics,
  environment and replay buffer; all |Z| agents train together as one batched ensemble.
Both are the same code: every network is an ensemble of M members (M = 1 shared, M = |Z|
separate) whose weights are stacked and run as one batched matmul, and every batch has
the shape [M, batch, ...].
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # off-screen MuJoCo rendering; read when mujoco is imported

import copy
import ctypes
import json
import math
import random
import signal
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import NamedTuple

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import tyro
from torch.utils.tensorboard import SummaryWriter

import multidirection_ant  # noqa: F401  (registers MultiDirectionAnt-v0)
import multigoal_env  # noqa: F401  (registers MultiGoal-v0 and MultiGoalTwo-v0)

SCRIPT = "mede_continuous"
LOG_EVERY = 100  # updates between two loss logs (the only host syncs of the hot loop)


@dataclass
class Args:
    exp_name: str = SCRIPT
    """the name of this experiment (part of the run name)"""
    seed: int = 1
    """seed of the experiment (python, numpy, torch and the environments)"""
    torch_deterministic: bool = True
    """if toggled, `torch.backends.cudnn.deterministic=True`"""
    cuda: bool = True
    """if toggled, use CUDA when it is available (falls back to the CPU silently)"""
    track: bool = False
    """if toggled, track the run with Weights and Biases (needs `pip install wandb`)"""
    wandb_project_name: str = "mede"
    """the wandb project name"""
    wandb_entity: str | None = None
    """the entity (team) of the wandb project"""
    capture_video: bool = False
    """if toggled, save a GIF of one deterministic evaluation episode per z to runs/{run_name}/videos"""
    save_model: bool = False
    """if toggled, save the trained networks and the arguments to runs/{run_name}/{exp_name}.pt"""

    env_id: str = "Hopper-v4"
    """the id of the environment (any gymnasium id with a Box action space)"""
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
    eval_episodes: int = 10
    """deterministic evaluation episodes per z after training (written to eval.json); 0 skips it"""
    checkpoint_every: int = 100000
    """write a resumable checkpoint every this many steps (0: only on SIGINT/SIGTERM)"""
    resume: str | None = None
    """path of a checkpoint.pt to continue from (the run keeps its directory and arguments)"""


# Arguments that may differ from the checkpoint's when resuming; all others define the run.
RESUMABLE_OVERRIDES = ("total_timesteps", "checkpoint_every", "eval_episodes", "save_model",
                       "capture_video", "track", "wandb_project_name", "wandb_entity", "cuda", "resume")


class UsageError(Exception):
    """Bad input from the user: reported as one line on stderr, exit code 2."""


def check_args(args: Args) -> None:
    positive = ["total_timesteps", "buffer_size", "batch_size", "policy_frequency", "target_network_frequency",
                "hidden_dim", "disc_hidden_dim", "policy_lr", "q_lr", "disc_lr"]
    for name in positive:
        if getattr(args, name) <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    for name in ["learning_starts", "eval_episodes", "checkpoint_every", "disc_coef", "reward_scale"]:
        if getattr(args, name) < 0:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    if args.num_z < 2:
        raise UsageError(f"--num-z must be at least 2 (MEDE learns |Z| distinct policies), got {args.num_z}")
    if args.separate_networks and args.batch_size < args.num_z:
        raise UsageError(f"--batch-size ({args.batch_size}) must be at least --num-z ({args.num_z}) "
                         "with --separate-networks: the discriminator's batch is drawn across all agents")
    if args.separate_networks and args.total_timesteps < args.num_z:
        raise UsageError(f"--total-timesteps ({args.total_timesteps}) must be at least --num-z ({args.num_z}) "
                         "with --separate-networks: every step of training steps all |Z| envs")
    if args.separate_networks and args.buffer_size < args.num_z:
        raise UsageError(f"--buffer-size ({args.buffer_size}) must be at least --num-z ({args.num_z})")
    if not 0 <= args.gamma <= 1:
        raise UsageError(f"--gamma must be in [0, 1], got {args.gamma}")
    if not 0 < args.tau <= 1:
        raise UsageError(f"--tau must be in (0, 1], got {args.tau}")
    if args.alpha <= 0:
        raise UsageError(f"--alpha must be positive, got {args.alpha}")


# ----------------------------------------------------------------------------- environment
def make_envs(env_id: str, num_envs: int) -> gym.vector.VectorEnv:
    """`num_envs` copies of `env_id` in one synchronous vector env with SAME_STEP autoreset:
    when an episode ends, `step` returns the first observation of the next episode and puts
    the last one of the finished episode in `infos["final_obs"]`."""
    try:
        envs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync",
                            vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP})
    except gym.error.Error as error:
        raise UsageError(f"cannot make environment '{env_id}': {error}") from None
    if not isinstance(envs.single_action_space, gym.spaces.Box):
        raise UsageError(f"'{env_id}' has a {type(envs.single_action_space).__name__} action space; "
                         "MEDE needs a continuous (Box) action space")
    if not isinstance(envs.single_observation_space, gym.spaces.Box) or len(envs.single_observation_space.shape) != 1:
        raise UsageError(f"'{env_id}' needs a flat Box observation space, got {envs.single_observation_space}")
    return gym.wrappers.vector.RecordEpisodeStatistics(envs)


def transitions_to_store(next_obs: np.ndarray, infos: dict) -> np.ndarray:
    """The s' of each env's transition: `next_obs`, except where an episode just ended, where
    it is the episode's true last observation and not the first one of the next episode."""
    real_next_obs = next_obs.copy()
    if "_final_obs" in infos:
        for i in np.flatnonzero(infos["_final_obs"]):
            real_next_obs[i] = infos["final_obs"][i]
    return real_next_obs


# ---------------------------------------------------------------------------- replay buffer
class Batch(NamedTuple):
    obs: torch.Tensor  # [M, B, obs_dim]
    actions: torch.Tensor  # [M, B, act_dim]
    rewards: torch.Tensor  # [M, B]
    next_obs: torch.Tensor  # [M, B, obs_dim]
    terminations: torch.Tensor  # [M, B], 1.0 where s' is terminal (no bootstrap); truncations are 0
    z: torch.Tensor  # [M, B], int64: the z that acted


class ReplayBuffer:
    """M replay buffers side by side (M = 1 shared, M = |Z| separate), preallocated on `device`
    as [capacity, M, ...]: every env step writes one row, member m's transition in column m."""

    def __init__(self, capacity: int, members: int, obs_dim: int, act_dim: int, device: torch.device):
        self.capacity, self.members, self.device = capacity, members, device
        self.obs = torch.zeros(capacity, members, obs_dim, device=device)
        self.next_obs = torch.zeros(capacity, members, obs_dim, device=device)
        self.actions = torch.zeros(capacity, members, act_dim, device=device)
        self.rewards = torch.zeros(capacity, members, device=device)
        self.terminations = torch.zeros(capacity, members, device=device)
        self.z = torch.zeros(capacity, members, dtype=torch.long, device=device)
        self.member_index = torch.arange(members, device=device).unsqueeze(1)  # [M, 1]
        self.pos, self.size = 0, 0

    def add(self, obs, next_obs, actions, rewards, terminations, z) -> None:
        """Store one step of the M envs (numpy arrays with a leading axis of size M)."""
        for name, value in zip(Batch._fields, (obs, actions, rewards, next_obs, terminations, z)):
            column = getattr(self, name)
            column[self.pos] = torch.as_tensor(value, dtype=column.dtype).to(self.device)
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int) -> Batch:
        """An independent batch for every member: tensors of shape [M, batch_size, ...]."""
        idx = torch.randint(0, self.size, (self.members, batch_size), device=self.device)
        return Batch(*(getattr(self, name)[idx, self.member_index] for name in Batch._fields))

    def state_dict(self) -> dict:
        stored = {name: getattr(self, name)[: self.size].cpu() for name in Batch._fields}
        return {**stored, "pos": self.pos, "size": self.size}

    def load_state_dict(self, state: dict) -> None:
        self.pos, self.size = state["pos"], state["size"]
        for name in Batch._fields:
            getattr(self, name)[: self.size] = state[name].to(self.device)


# --------------------------------------------------------------------------------- networks
class EnsembleMLP(nn.Module):
    """`members` independent MLPs (ReLU between layers) whose weights are stacked as
    [members, fan_in, fan_out]: input [members, B, sizes[0]] -> output [members, B, sizes[-1]],
    all members in one batched matmul per layer."""

    def __init__(self, members: int, sizes: list[int]):
        super().__init__()
        self.weights, self.biases = nn.ParameterList(), nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = fan_in**-0.5  # nn.Linear's default initialisation
            self.weights.append(nn.Parameter(torch.empty(members, fan_in, fan_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(members, 1, fan_out).uniform_(-bound, bound)))

    def forward(self, x: torch.Tensor, train_params: bool = True) -> torch.Tensor:
        """With `train_params=False` the weights are detached: a loss on the output sends
        gradient to the input `x` but not to this network."""
        last = len(self.weights) - 1
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            if not train_params:
                weight, bias = weight.detach(), bias.detach()
            x = torch.baddbmm(bias, x, weight)
            x = x if i == last else torch.relu(x)
        return x


LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


class Actor(nn.Module):
    """Tanh-squashed Gaussian policies π_φ(a|s, z) of M members, rescaled to the action bounds."""

    def __init__(self, members: int, in_dim: int, act_dim: int, hidden_dim: int, action_low, action_high):
        super().__init__()
        self.net = EnsembleMLP(members, [in_dim, hidden_dim, hidden_dim, 2 * act_dim])  # mean and log-std
        low, high = (torch.as_tensor(x, dtype=torch.float32) for x in (action_low, action_high))
        self.register_buffer("action_scale", (high - low) / 2)
        self.register_buffer("action_bias", (high + low) / 2)

    def forward(self, policy_in: torch.Tensor):
        mean, log_std = self.net(policy_in).chunk(2, dim=-1)
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(log_std) + 1)
        return mean, log_std

    def sample(self, policy_in: torch.Tensor):
        """a = f_φ(ε; s, z) = tanh(μ + σ·ε)·scale + bias, ε ~ N(0, I), and log π(a|s, z).

        log π = log N(u; μ, σ) - Σ log(scale·(1 - tanh(u)²)) with u = μ + σ·ε, written out
        (no torch.distributions), using log(1 - tanh(u)²) = 2·(log 2 - u - softplus(-2u))."""
        mean, log_std = self(policy_in)
        noise = torch.randn_like(mean)
        pre_tanh = mean + log_std.exp() * noise
        action = torch.tanh(pre_tanh) * self.action_scale + self.action_bias
        log_gaussian = -0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)
        log_det_jacobian = 2 * (math.log(2) - pre_tanh - F.softplus(-2 * pre_tanh)) + self.action_scale.log()
        return action, (log_gaussian - log_det_jacobian).sum(-1)

    def deterministic(self, policy_in: torch.Tensor) -> torch.Tensor:
        """The mean action tanh(μ)·scale + bias, used for evaluation."""
        return torch.tanh(self(policy_in)[0]) * self.action_scale + self.action_bias


class TwinQNetwork(nn.Module):
    """Q_1 and Q_2 of each of the M members as ONE ensemble of 2M MLPs."""

    def __init__(self, members: int, in_dim: int, act_dim: int, hidden_dim: int):
        super().__init__()
        self.net = EnsembleMLP(2 * members, [in_dim + act_dim, hidden_dim, hidden_dim, 1])

    def forward(self, policy_in: torch.Tensor, actions: torch.Tensor, train_params: bool = True) -> torch.Tensor:
        """[2, M, B]: both critics' values Q_j(s, a, z) for every member."""
        x = torch.cat([policy_in, actions], dim=-1)  # [M, B, in]
        members, batch = x.shape[:2]
        q = self.net(x.repeat(2, 1, 1), train_params)  # member m's Q_1 is row m, its Q_2 row M + m
        return q.view(2, members, batch)


class Discriminator(nn.Module):
    """q(z|x): a classifier of z from x = [s, a] (q_ρ(z|s,a)) or x = s (q(z|s)); ONE network
    shared by all members. Two hidden layers, ReLU, |Z| logits."""

    def __init__(self, in_dim: int, hidden_dim: int, num_z: int):
        super().__init__()
        self.net = EnsembleMLP(1, [in_dim, hidden_dim, hidden_dim, num_z])

    def logits(self, x: torch.Tensor, train_params: bool = True) -> torch.Tensor:
        """x [..., in_dim] -> logits [..., |Z|]."""
        return self.net(x.reshape(1, -1, x.shape[-1]), train_params).view(*x.shape[:-1], -1)

    def log_prob(self, x: torch.Tensor, z: torch.Tensor, train_params: bool = True) -> torch.Tensor:
        """log q(z|x) of the given z; x [..., in_dim], z [...] -> [...]."""
        return self.logits(x, train_params).log_softmax(-1).gather(-1, z.unsqueeze(-1)).squeeze(-1)

    def loss(self, x: torch.Tensor, z: torch.Tensor):
        """Cross-entropy against the true z (x [B, in_dim], z [B]); also returns the batch's mean
        log q(z|x) and accuracy."""
        logits = self.logits(x)
        log_q = -F.cross_entropy(logits, z, reduction="none")
        accuracy = (logits.argmax(-1) == z).float().mean()
        return -log_q.mean(), log_q.detach().mean(), accuracy


def policy_input(obs: torch.Tensor, z: torch.Tensor, num_z: int, separate: bool) -> torch.Tensor:
    """What π and Q see: [s, one_hot(z)] for the shared networks, s alone for separate ones
    (there z is the member index)."""
    return obs if separate else torch.cat([obs, F.one_hot(z, num_z).to(obs.dtype)], dim=-1)


# ----------------------------------------------------------------------------------- losses
def critic_loss(qf: TwinQNetwork, qf_target: TwinQNetwork, actor: Actor, disc: Discriminator, batch: Batch,
                alpha: torch.Tensor, beta: float, reward_scale: float, gamma: float, num_z: int, separate: bool):
    """Soft Bellman residual of both critics (paper §4, J_Q; summed over critics and members,
    mean over the batch, without the 1/2 as CleanRL) against the target of Eq. 6:
        y = c·r + γ(1 - d)(min_j Q̄_j(s', a', z) - α(log π(a'|s', z) - β log q_ρ(z|s', a'))),
    a' ~ π(·|s', z)."""
    with torch.no_grad():
        next_in = policy_input(batch.next_obs, batch.z, num_z, separate)
        next_actions, next_log_pi = actor.sample(next_in)
        next_log_q = disc.log_prob(torch.cat([batch.next_obs, next_actions], -1), batch.z)
        next_v = qf_target(next_in, next_actions).min(0).values - alpha * (next_log_pi - beta * next_log_q)
        target = reward_scale * batch.rewards + gamma * (1 - batch.terminations) * next_v
    q = qf(policy_input(batch.obs, batch.z, num_z, separate), batch.actions)  # [2, M, B]
    per_critic = (q - target).pow(2).mean(-1).sum(-1)  # each member's own mean; members are independent
    info = {"qf1_values": q[0].mean(), "qf2_values": q[1].mean(),
            "qf1_loss": per_critic[0] / q.shape[1], "qf2_loss": per_critic[1] / q.shape[1]}
    return per_critic.sum(), info


def actor_loss(actor: Actor, qf: TwinQNetwork, disc: Discriminator, obs: torch.Tensor, z: torch.Tensor,
               alpha: torch.Tensor, beta: float, disc_grad: bool, num_z: int, separate: bool):
    """J_π(φ) = E[α(log π(a|s, z) - β log q_ρ(z|s, a)) - min_j Q_j(s, a, z)], a = f_φ(ε; s, z)
    (paper §4). Neither the critics' nor the discriminator's weights get a gradient; with
    `disc_grad` the gradient ∇_a log q_ρ reaches the actor through a, else a is detached there."""
    policy_in = policy_input(obs, z, num_z, separate)
    actions, log_pi = actor.sample(policy_in)
    disc_actions = actions if disc_grad else actions.detach()
    log_q = disc.log_prob(torch.cat([obs, disc_actions], -1), z, train_params=False)
    q = qf(policy_in, actions, train_params=False).min(0).values
    return (alpha * (log_pi - beta * log_q) - q).mean(-1).sum(), log_pi.detach()


def alpha_loss(log_alpha: torch.Tensor, log_pi: torch.Tensor, target_entropy: float):
    """J(α) = E[-α (log π(a|s, z) + H̄)]: raises α while the entropy is below the target H̄."""
    return (-log_alpha.exp() * (log_pi + target_entropy)).mean()


def discriminator_batch(batch: Batch):
    """One batch of B transitions drawn across all members (B/M from each) for the discriminators."""
    members, size = batch.z.shape
    per_member = size // members
    take = lambda x: x[:, :per_member].reshape(members * per_member, *x.shape[2:])  # noqa: E731
    return take(batch.obs), take(batch.actions), take(batch.z)


# ----------------------------------------------------------------------------------- update
class MEDE:
    """The networks, their optimizers and the temperature; `update()` is one training step
    of every member (one gradient step per agent)."""

    def __init__(self, obs_dim: int, act_dim: int, action_low, action_high, args: Args, device: torch.device):
        self.args, self.num_z, self.separate = args, args.num_z, args.separate_networks
        members = args.num_z if args.separate_networks else 1
        in_dim = obs_dim if args.separate_networks else obs_dim + args.num_z
        self.actor = Actor(members, in_dim, act_dim, args.hidden_dim, action_low, action_high).to(device)
        self.qf = TwinQNetwork(members, in_dim, act_dim, args.hidden_dim).to(device)
        self.qf_target = copy.deepcopy(self.qf).requires_grad_(False)
        self.disc = Discriminator(obs_dim + act_dim, args.disc_hidden_dim, args.num_z).to(device)  # q_ρ(z|s,a)
        self.state_disc = Discriminator(obs_dim, args.disc_hidden_dim, args.num_z).to(device)  # q(z|s): measurement only
        self.q_optimizer = torch.optim.Adam(self.qf.parameters(), lr=args.q_lr, fused=True)
        # The two discriminators are independent networks trained side by side by one optimizer.
        disc_params = [*self.disc.parameters(), *self.state_disc.parameters()]
        self.disc_optimizer = torch.optim.Adam(disc_params, lr=args.disc_lr, fused=True)
        self.target_entropy = -float(act_dim)
        self.log_alpha = torch.full((1,), math.log(args.alpha), device=device, requires_grad=args.autotune)
        # The actor and the temperature have independent losses: one backward and one Adam step
        # (two parameter groups, two learning rates) serve both. The temperature loss uses the
        # log π of the actor loss's sample, drawn before the actor step (CleanRL draws another after).
        policy_groups = [{"params": self.actor.parameters(), "lr": args.policy_lr}]
        if args.autotune:
            policy_groups.append({"params": [self.log_alpha], "lr": args.q_lr})
        self.actor_optimizer = torch.optim.Adam(policy_groups, fused=True)
        self.info = {}  # the latest losses and measurements, as tensors (read only when logging)

    def update(self, batch: Batch, update_step: int) -> dict:
        args = self.args
        alpha = self.log_alpha.detach().exp()
        qf_loss, self.info = critic_loss(self.qf, self.qf_target, self.actor, self.disc, batch, alpha,
                                         args.disc_coef, args.reward_scale, args.gamma, self.num_z, self.separate)
        self.q_optimizer.zero_grad(set_to_none=True)
        qf_loss.backward()
        self.q_optimizer.step()
        self.info["qf_loss"] = qf_loss.detach() / (2 * batch.z.shape[0])  # CleanRL's tag: (qf1 + qf2) / 2

        obs, actions, z = discriminator_batch(batch)
        disc_loss, log_q_sa, accuracy_sa = self.disc.loss(torch.cat([obs, actions], -1), z)
        state_disc_loss, log_q_s, accuracy_s = self.state_disc.loss(obs, z)
        self.disc_optimizer.zero_grad(set_to_none=True)
        (disc_loss + state_disc_loss).backward()
        self.disc_optimizer.step()
        self.info.update({"disc_loss": disc_loss.detach(), "state_disc_loss": state_disc_loss.detach(),
                          "log_q_z_given_sa": log_q_sa, "log_q_z_given_s": log_q_s,
                          "accuracy_z_given_sa": accuracy_sa, "accuracy_z_given_s": accuracy_s})

        if update_step % args.policy_frequency == 0:
            for _ in range(args.policy_frequency):
                pi_loss, log_pi = actor_loss(self.actor, self.qf, self.disc, batch.obs, batch.z, alpha,
                                             args.disc_coef, args.disc_grad, self.num_z, self.separate)
                self.info["actor_loss"] = pi_loss.detach() / batch.z.shape[0]
                if args.autotune:
                    a_loss = alpha_loss(self.log_alpha, log_pi, self.target_entropy)
                    self.info["alpha_loss"] = a_loss.detach()
                    pi_loss = pi_loss + a_loss
                self.actor_optimizer.zero_grad(set_to_none=True)
                pi_loss.backward()
                self.actor_optimizer.step()
                alpha = self.log_alpha.detach().exp()
        self.info["alpha"] = alpha

        if update_step % args.target_network_frequency == 0:
            with torch.no_grad():
                for target, online in zip(self.qf_target.parameters(), self.qf.parameters()):
                    target.lerp_(online, args.tau)
        return self.info

    def act(self, obs: torch.Tensor, z: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """Actions for N envs: obs [N, obs_dim], z [N] -> [N, act_dim]. With separate networks the
        envs are grouped by z (env i of N runs z = i // (N / |Z|)), so member m sees its own envs."""
        members = self.num_z if self.separate else 1
        policy_in = policy_input(obs.view(members, -1, obs.shape[-1]), z.view(members, -1), self.num_z, self.separate)
        actions = self.actor.deterministic(policy_in) if deterministic else self.actor.sample(policy_in)[0]
        return actions.reshape(obs.shape[0], -1)

    def modules(self) -> dict:
        """Everything with a state, by name (for checkpoints)."""
        return {"actor": self.actor, "qf": self.qf, "qf_target": self.qf_target, "disc": self.disc,
                "state_disc": self.state_disc, "q_optimizer": self.q_optimizer,
                "actor_optimizer": self.actor_optimizer, "disc_optimizer": self.disc_optimizer}

    def state_dict(self) -> dict:
        return {**{name: m.state_dict() for name, m in self.modules().items()}, "log_alpha": self.log_alpha.detach().cpu()}

    def load_state_dict(self, state: dict) -> None:
        for name, module in self.modules().items():
            module.load_state_dict(state[name])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])

    def all_finite(self) -> bool:
        tensors = [*self.actor.parameters(), *self.qf.parameters(), *self.qf_target.parameters(),
                   *self.disc.parameters(), *self.state_disc.parameters(), self.log_alpha]
        return all(bool(torch.isfinite(t).all()) for t in tensors)


# ------------------------------------------------------------------------------- evaluation
def evaluate(agent: MEDE, env_id: str, episodes: int, seed: int, device: torch.device) -> list[dict]:
    """`episodes` episodes of every z with the deterministic (mean) action, all side by side in
    one vector env (env i runs z = i // episodes). Returns the per_z entries of eval.json."""
    num_envs = agent.num_z * episodes
    envs = make_envs(env_id, num_envs)
    z = torch.arange(agent.num_z, device=device).repeat_interleave(episodes)
    obs, _ = envs.reset(seed=seed)
    returns, goals = [None] * num_envs, [-1] * num_envs
    while any(r is None for r in returns):
        with torch.inference_mode():
            actions = agent.act(torch.as_tensor(obs, dtype=torch.float32, device=device), z, deterministic=True)
        obs, _, _, _, infos = envs.step(actions.cpu().numpy())
        for i in np.flatnonzero(infos.get("_episode", [])):
            if returns[i] is None:
                returns[i] = float(infos["episode"]["r"][i])
                if "goal_index" in infos.get("final_info", {}):
                    goals[i] = int(infos["final_info"]["goal_index"][i])
    envs.close()
    per_z = []
    for k in range(agent.num_z):
        mine = slice(k * episodes, (k + 1) * episodes)
        entry = {"z": k, "returns": returns[mine], "mean": float(np.mean(returns[mine])),
                 "std": float(np.std(returns[mine]))}
        if env_id.startswith("MultiGoal"):
            entry["goals"] = goals[mine]
        per_z.append(entry)
    return per_z


def most_common_goal(goals: list[int]) -> int:
    """The goal this z reaches most often (-1 when it reaches none)."""
    reached = [g for g in goals if g >= 0]
    return max(set(reached), key=reached.count) if reached else -1


def print_eval_table(result: dict) -> None:
    multigoal = "goals" in result["per_z"][0]
    print(f"\n  z | return (mean ± std over {len(result['per_z'][0]['returns'])} episodes)" +
          (" | goal reached (episodes)" if multigoal else ""))
    for entry in result["per_z"]:
        line = f"{entry['z']:>3} | {entry['mean']:10.1f} ± {entry['std']:.1f}"
        if multigoal:
            goal = most_common_goal(entry["goals"])
            line += f" | {goal:>2} ({entry['goals'].count(goal) if goal >= 0 else 0}/{len(entry['goals'])})"
        print(line)
    print(f"avg {result['avg']:.1f} | max {result['max']:.1f}" +
          (f" | distinct goals {result['distinct_goals']} of {result['num_z']} z" if multigoal else ""))


def record_video(agent: MEDE, env_id: str, z: int, seed: int, path: str, device: torch.device) -> None:
    """One deterministic episode of policy z rendered to an animated GIF."""
    from PIL import Image

    env = gym.make(env_id, render_mode="rgb_array")
    obs, _ = env.reset(seed=seed)
    frames, done = [env.render()], False
    members = agent.num_z if agent.separate else 1
    while not done:
        # Every member acts on this observation; keep the action of policy z.
        all_obs = torch.as_tensor(obs, dtype=torch.float32, device=device).expand(members, -1)
        all_z = torch.full((members,), z, device=device) if not agent.separate else torch.arange(members, device=device)
        with torch.inference_mode():
            action = agent.act(all_obs, all_z, deterministic=True)[z if agent.separate else 0]
        obs, _, terminated, truncated, _ = env.step(action.cpu().numpy())
        frames.append(env.render())
        done = terminated or truncated
    env.close()
    images = [Image.fromarray(frame) for frame in frames]
    duration = max(20, 1000 // env.metadata.get("render_fps", 30))  # ms per frame
    images[0].save(path, save_all=True, append_images=images[1:], duration=duration, loop=0)


# ------------------------------------------------------------------- files, checkpoints
def atomic_save(obj, path: str) -> None:
    """torch.save to a temporary file, then rename: `path` is either the old or the new file."""
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_json(obj, path: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
    os.replace(tmp, path)


def free_path(path: str) -> str:
    """`path` if nothing is there yet, else `stem.1.ext`, `stem.2.ext`, ...: never overwrite."""
    stem, ext = os.path.splitext(path)
    candidate, n = path, 0
    while os.path.exists(candidate):
        n += 1
        candidate = f"{stem}.{n}{ext}"
    return candidate


def read_checkpoint(path: str) -> dict:
    """Load a checkpoint or model file written by this script; one clear error otherwise."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False, mmap=True)  # mmap: read lazily
    except FileNotFoundError:
        raise UsageError(f"no such file: {path}") from None
    except Exception as error:  # a truncated or foreign file
        raise UsageError(f"{path} is not a readable checkpoint ({type(error).__name__}: {error})") from None
    if not isinstance(state, dict) or "script" not in state:
        raise UsageError(f"{path} was not written by one of this project's scripts")
    if state["script"] != SCRIPT:
        raise UsageError(f"{path} was written by {state['script']}.py, not {SCRIPT}.py")
    return state


def load_model(path: str, device: str | torch.device = "cpu"):
    """Load a `--save-model` file (or a checkpoint) for evaluation or plotting.

    Returns (agent, args): a MEDE whose actor, critics and discriminators hold the saved
    weights (use `agent.act`, `agent.qf`, `agent.disc`), and the run's Args."""
    state = read_checkpoint(path)
    args = Args(**state["args"])
    dims = state["dims"]
    agent = MEDE(dims["obs_dim"], dims["act_dim"], dims["action_low"], dims["action_high"], args, torch.device(device))
    for name in ("actor", "qf", "disc", "state_disc"):
        getattr(agent, name).load_state_dict(state["agent"][name])
        getattr(agent, name).eval()
    return agent, args


def find_time_limit(env: gym.Env):
    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.wrappers.TimeLimit):
            return env
        env = env.env
    return None


def env_states(envs) -> list:
    """What is needed to continue every sub-env's episode exactly where it is: the simulator
    state (a copy of MuJoCo's whole MjData, or of a pure-Python env's attributes),
    its random generator and the time-limit counter. None where it cannot be captured."""
    from gymnasium.envs.mujoco import MujocoEnv

    states = []
    for env in envs.unwrapped.envs:
        inner, time_limit = env.unwrapped, find_time_limit(env)
        state = {"elapsed_steps": time_limit._elapsed_steps if time_limit else None}
        if isinstance(inner, MujocoEnv):  # all of MjData: Ant's reward reads positions derived from the state
            state.update(mujoco=copy.deepcopy(inner.data), np_random=inner.np_random.bit_generator.state)
        else:
            try:
                state["attributes"] = copy.deepcopy(vars(inner))
            except Exception:
                state = None
        states.append(state)
    return states


def restore_env_states(envs, states: list) -> list:
    """Inverse of `env_states`; returns the indices of the sub-envs that could not be restored."""
    import mujoco

    lost = []
    for i, (env, state) in enumerate(zip(envs.unwrapped.envs, states)):
        if state is None:
            lost.append(i)
            continue
        inner, time_limit = env.unwrapped, find_time_limit(env)
        if "mujoco" in state:
            mujoco.mj_copyData(inner.data, inner.model, state["mujoco"])
            inner.np_random.bit_generator.state = state["np_random"]
        else:
            vars(inner).update(state["attributes"])
        if time_limit is not None:
            time_limit._elapsed_steps = state["elapsed_steps"]
    return lost


def rng_states() -> dict:
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def check_resume(args: Args, state: dict) -> None:
    """A checkpoint continues only the run that wrote it."""
    saved = state["args"]
    changed = [name for name, value in asdict(args).items()
               if name not in RESUMABLE_OVERRIDES and saved.get(name) != value]
    if changed:
        flags = ", ".join(f"--{n.replace('_', '-')} {saved.get(n)!r} (asked: {getattr(args, n)!r})" for n in changed)
        raise UsageError(f"{args.resume} belongs to another run: it was made with {flags}")


# ------------------------------------------------------------------------- progress display
class Progress:
    """A one-line progress bar on a terminal; a plain line every 5% or every minute, whichever
    comes first, when not a TTY (a log file)."""

    def __init__(self, total: int, start: int):
        self.total, self.start, self.tty = total, start, sys.stderr.isatty()
        self.start_time = self.last_print = time.time()
        self.next_plain = start + max(1, total // 20)

    def sps(self, step: int) -> int:
        return int((step - self.start) / max(time.time() - self.start_time, 1e-9))

    def update(self, step: int, recent_return: float | None) -> None:
        now = time.time()
        if self.tty and now - self.last_print < 0.5 and step < self.total:
            return
        if not self.tty and step < self.next_plain and now - self.last_print < 60 and step < self.total:
            return
        self.last_print = now
        while self.next_plain <= step:
            self.next_plain += max(1, self.total // 20)
        sps = self.sps(step)
        eta = (self.total - step) / max(sps, 1)
        ret = "-" if recent_return is None else f"{recent_return:.1f}"
        text = (f"step {step}/{self.total} ({100 * step / self.total:.0f}%) | {sps} SPS | "
                f"return {ret} | ETA {int(eta) // 3600}:{int(eta) % 3600 // 60:02d}:{int(eta) % 60:02d}")
        if self.tty:
            bar = "#" * int(20 * step / self.total)
            print(f"\r[{bar:<20}] {text}", end="", file=sys.stderr, flush=True)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.tty:
            print(file=sys.stderr)


# ------------------------------------------------------------------------------------ main
def keep_freed_memory() -> None:
    """Speed: glibc hands freed blocks over 128 kB back to the OS, so every update would
    page-fault its activations in again (10-15% of an update here). Keep them (Linux only)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD: serve blocks up to 32 MB from the heap
    libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: do not give freed heap back to the OS


class Interrupted(Exception):
    pass


MEASUREMENTS = ("log_q_z_given_sa", "log_q_z_given_s", "accuracy_z_given_sa", "accuracy_z_given_s")


def main(args: Args) -> dict | None:
    """Train, evaluate, and return the evaluation (the content of eval.json)."""
    check_args(args)
    keep_freed_memory()
    checkpoint = read_checkpoint(args.resume) if args.resume else None
    if checkpoint is not None:
        check_resume(args, checkpoint)
        run_dir = os.path.dirname(os.path.abspath(args.resume))
    else:
        run_name = f"{args.env_id}__{args.exp_name}__{args.seed}__{int(time.time())}"
        run_dir = free_path(os.path.join("runs", run_name))
    run_name = os.path.basename(run_dir)

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.backends.cudnn.deterministic = args.torch_deterministic
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")

    # One env per agent: the shared networks act in one env, separate networks in |Z| (env i runs z = i).
    num_envs = args.num_z if args.separate_networks else 1
    envs = make_envs(args.env_id, num_envs)
    obs_dim = envs.single_observation_space.shape[0]
    act_dim = envs.single_action_space.shape[0]
    action_low, action_high = envs.single_action_space.low, envs.single_action_space.high
    dims = {"obs_dim": obs_dim, "act_dim": act_dim, "action_low": action_low, "action_high": action_high}
    agent = MEDE(obs_dim, act_dim, action_low, action_high, args, device)
    rb = ReplayBuffer(args.buffer_size // num_envs, num_envs, obs_dim, act_dim, device)
    z_rng = np.random.default_rng(args.seed)  # draws z ~ p(z) at the start of every episode
    z = np.arange(num_envs) if args.separate_networks else z_rng.integers(args.num_z, size=num_envs)
    envs.action_space.seed(args.seed)
    obs, _ = envs.reset(seed=args.seed)
    num_iterations = args.total_timesteps // num_envs  # every iteration steps every env once
    start_iteration, recent_returns = 0, deque(maxlen=20)

    if checkpoint is not None:
        agent.load_state_dict(checkpoint["agent"])
        rb.load_state_dict(checkpoint["buffer"])
        restore_rng_states(checkpoint["rng"])
        z_rng.bit_generator.state = checkpoint["z_rng"]
        envs.action_space.np_random.bit_generator.state = checkpoint["action_space_rng"]
        lost = restore_env_states(envs, checkpoint["envs"])
        obs, z = checkpoint["obs"], checkpoint["z"]
        if lost:  # such an env starts a new episode; its cut episode is not logged
            print(f"note: environment state of env(s) {lost} could not be saved; they start a new episode")
            obs[lost] = np.stack([envs.unwrapped.envs[i].reset()[0] for i in lost])
        envs.episode_returns[:] = checkpoint["episode_returns"]
        envs.episode_lengths[:] = checkpoint["episode_lengths"]
        envs.episode_returns[lost], envs.episode_lengths[lost] = 0, 0
        start_iteration = checkpoint["global_step"] // num_envs
        recent_returns.extend(checkpoint["recent_returns"])
        print(f"resuming {run_name} at step {checkpoint['global_step']}")

    os.makedirs(run_dir, exist_ok=True)
    if args.track:
        try:
            import wandb
        except ImportError:
            raise UsageError("--track needs Weights and Biases: pip install wandb") from None
        wandb.init(project=args.wandb_project_name, entity=args.wandb_entity, sync_tensorboard=True,
                   config=vars(args), name=run_name, save_code=True)
    start_step = start_iteration * num_envs
    writer = SummaryWriter(run_dir, purge_step=start_step if checkpoint is not None else None)
    if checkpoint is None:
        writer.add_text("hyperparameters", "|param|value|\n|-|-|\n" + "\n".join(f"|{k}|{v}|" for k, v in vars(args).items()))
    checkpoint_path = os.path.join(run_dir, "checkpoint.pt")
    nonfinite = torch.zeros((), dtype=torch.bool, device=device)  # set by a NaN/inf loss, read when logging

    def check_finite(step: int) -> None:
        if nonfinite.item() or not agent.all_finite():
            raise FloatingPointError(f"a loss or a parameter became NaN or infinite by step {step}")

    def save_checkpoint(next_step: int) -> None:
        check_finite(next_step)
        atomic_save({"script": SCRIPT, "args": asdict(args), "dims": dims, "global_step": next_step,
                     "agent": agent.state_dict(), "buffer": rb.state_dict(), "rng": rng_states(),
                     "z_rng": z_rng.bit_generator.state, "z": z.copy(),
                     "action_space_rng": envs.action_space.np_random.bit_generator.state,
                     "envs": env_states(envs), "obs": obs,
                     "episode_returns": envs.episode_returns.copy(), "episode_lengths": envs.episode_lengths.copy(),
                     "recent_returns": list(recent_returns)}, checkpoint_path)

    stop_signal = []
    handlers = {sig: signal.signal(sig, lambda signum, frame: stop_signal.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    total_steps = num_iterations * num_envs
    progress = Progress(total_steps, start_step)
    try:
        for iteration in range(start_iteration, num_iterations):
            global_step = iteration * num_envs
            if global_step < args.learning_starts:
                actions = envs.action_space.sample()
            else:
                with torch.inference_mode():
                    actions = agent.act(torch.as_tensor(obs, dtype=torch.float32, device=device),
                                        torch.as_tensor(z, device=device))
                actions = actions.cpu().numpy()

            next_obs, rewards, terminations, truncations, infos = envs.step(actions)
            for i in np.flatnonzero(infos.get("_episode", [])):
                recent_returns.append(float(infos["episode"]["r"][i]))
                writer.add_scalar("charts/episodic_return", infos["episode"]["r"][i], global_step)
                writer.add_scalar(f"charts/episodic_return_z{z[i]}", infos["episode"]["r"][i], global_step)
                writer.add_scalar("charts/episodic_length", infos["episode"]["l"][i], global_step)
            # Truncated transitions are stored with termination 0, so they bootstrap.
            rb.add(obs, transitions_to_store(next_obs, infos), actions, rewards, terminations, z)
            if not args.separate_networks:  # a new episode draws a new z
                ended = np.flatnonzero(terminations | truncations)
                z[ended] = z_rng.integers(args.num_z, size=len(ended))
            obs = next_obs

            if global_step >= args.learning_starts:
                info = agent.update(rb.sample(args.batch_size), iteration)
                nonfinite |= ~torch.isfinite(info["qf_loss"])
                if iteration % LOG_EVERY == 0:
                    check_finite(global_step)
                    for name, value in info.items():
                        writer.add_scalar(f"charts/{name}" if name in MEASUREMENTS else f"losses/{name}",
                                          value.item(), global_step)
                    writer.add_scalar("charts/SPS", progress.sps(global_step), global_step)

            next_step = global_step + num_envs
            progress.update(next_step, recent_returns[-1] if recent_returns else None)
            if args.checkpoint_every and (next_step % args.checkpoint_every < num_envs or next_step == total_steps):
                save_checkpoint(next_step)
            if stop_signal:
                save_checkpoint(next_step)
                raise Interrupted()
        check_finite(total_steps)  # the updates since the last check (no model or evaluation otherwise)
    except Interrupted:
        progress.close()
        writer.close()
        resume_cmd = f"python {SCRIPT}.py --resume {os.path.relpath(checkpoint_path)}"
        print(f"interrupted at step {next_step}; checkpoint saved. Resume with: {resume_cmd}", file=sys.stderr)
        sys.exit(128 + stop_signal[0])
    except FloatingPointError as error:
        progress.close()
        writer.close()
        kept = (f"the last good checkpoint {os.path.relpath(checkpoint_path)} is intact"
                if os.path.exists(checkpoint_path) else "no checkpoint had been written yet")
        print(f"{SCRIPT}.py: error: {error}; training stopped, no model or evaluation written, and {kept}. "
              "Try a lower learning rate or another seed.", file=sys.stderr)
        sys.exit(1)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    progress.close()

    if args.save_model:
        model_path = free_path(os.path.join(run_dir, f"{args.exp_name}.pt"))
        weights = {name: getattr(agent, name).state_dict() for name in ("actor", "qf", "disc", "state_disc")}
        atomic_save({"script": SCRIPT, "args": asdict(args), "dims": dims, "agent": weights}, model_path)
        print(f"model saved to {model_path}")

    result = None
    if args.eval_episodes > 0:
        per_z = evaluate(agent, args.env_id, args.eval_episodes, args.seed + 10_000, device)
        means = [entry["mean"] for entry in per_z]
        result = {"algorithm": "MEDE", "separate_networks": args.separate_networks, "env_id": args.env_id,
                  "seed": args.seed, "global_step": total_steps, "num_z": args.num_z,
                  "avg": float(np.mean(means)), "max": float(np.max(means)), "per_z": per_z}
        if "goals" in per_z[0]:
            reached = {most_common_goal(entry["goals"]) for entry in per_z} - {-1}
            result["distinct_goals"] = len(reached)
        eval_path = free_path(os.path.join(run_dir, "eval.json"))
        atomic_write_json(result, eval_path)
        print_eval_table(result)
        print(f"-> {eval_path}")
        writer.add_scalar("eval/avg_return", result["avg"], total_steps)
        writer.add_scalar("eval/max_return", result["max"], total_steps)
    if args.capture_video:
        os.makedirs(os.path.join(run_dir, "videos"), exist_ok=True)
        for k in range(args.num_z):
            video_path = free_path(os.path.join(run_dir, "videos", f"eval_z{k}.gif"))
            record_video(agent, args.env_id, k, args.seed + 10_000, video_path, device)
        print(f"videos saved to {os.path.join(run_dir, 'videos')}")
    envs.close()
    writer.close()
    return result


def parse_args(argv: list[str] | None = None) -> Args:
    """Parse the command line. With `--resume PATH`, unspecified flags default to the
    checkpoint's own arguments, so `--resume PATH` alone continues the run as it was."""
    argv = sys.argv[1:] if argv is None else argv
    default = Args()
    for i, token in enumerate(argv):
        if token == "--resume" and i + 1 < len(argv) or token.startswith("--resume="):
            path = argv[i + 1] if token == "--resume" else token.split("=", 1)[1]
            default = Args(**read_checkpoint(path)["args"])
    return tyro.cli(Args, default=default, args=argv)


if __name__ == "__main__":
    try:
        main(parse_args())
    except UsageError as error:
        print(f"{SCRIPT}.py: error: {error}", file=sys.stderr)
        sys.exit(2)
