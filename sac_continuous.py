"""Soft Actor-Critic (SAC) for continuous actions: the baseline of the MEDE paper.

One maximum-entropy policy π(a|s) and twin soft Q-functions, CleanRL style, on
gymnasium 1.x. Defaults and flag names are CleanRL's `sac_continuous_action.py`, so the
two are set up alike, with one difference: with `--autotune` (the default) α starts at
`--alpha` (0.2), where CleanRL starts it at 1.0 (log α = 0); `--alpha 1` starts as CleanRL
does. The MEDE paper's SAC settings are in the README.

    python sac_continuous.py --env-id Hopper-v4
    python sac_continuous.py --env-id MultiGoal-v0 --total-timesteps 20000 --save-model

Read top to bottom: arguments, the three losses, the update, the machinery (environment,
networks) and `main()` with the training loop. Equation numbers refer to the MEDE paper: SAC is
its Eqs. 1-4 with a uniform prior π0 and a temperature α on the entropy term. The plumbing
(checkpoints, progress, evaluation files, the replay buffer) is the run_utils package.
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
from run_utils.cli import RunArgs, UsageError
from run_utils.hardware import autocast
from run_utils.run import Run

SCRIPT = cli.script_name(__file__)  # "sac_continuous", or the name of a copy
SAVED_NETWORKS = ("actor", "qf")  # what --save-model keeps


@dataclass
class Args(RunArgs):  # + the run's flags (--seed, --cuda, --threads, --checkpoint-every, --resume, ...)
    exp_name: str = SCRIPT
    """the name of this experiment (part of the run name)"""
    env_id: str = "Hopper-v4"
    """a gymnasium id (or module:Id) with Box actions, e.g. MultiGoal-v0; Hopper-v4 is the paper's version (v5 works)"""
    total_timesteps: int = 1000000
    """total environment steps of the experiment"""
    buffer_size: int = 1000000
    """the replay memory capacity (transitions)"""
    gamma: float = 0.99
    """the discount factor gamma"""
    tau: float = 0.005
    """target smoothing coefficient: Q_target <- (1 - tau) Q_target + tau Q"""
    batch_size: int = 256
    """the batch size of each gradient step"""
    learning_starts: int = 5000
    """environment steps of uniformly random actions before learning starts"""
    policy_lr: float = 3e-4
    """the learning rate of the policy network optimizer"""
    q_lr: float = 1e-3
    """the learning rate of the Q network optimizer (and of alpha when autotuned)"""
    policy_frequency: int = 2
    """the policy is trained every `policy_frequency` steps, `policy_frequency` times (delayed, TD3 style)"""
    target_network_frequency: int = 1
    """the frequency (in steps) of the target networks update"""
    alpha: float = 0.2
    """the entropy temperature alpha (its initial value when autotuned; CleanRL starts at 1.0 there)"""
    autotune: bool = True
    """automatic tuning of alpha towards the target entropy -dim(A)"""
    hidden_dim: int = 256
    """width of the two hidden layers of the actor and of each critic"""


def check_args(args: Args) -> None:
    cli.require(args, positive=["total_timesteps", "buffer_size", "batch_size", "policy_frequency",
                                "target_network_frequency", "hidden_dim", "policy_lr", "q_lr", "tau", "alpha"],
                non_negative=["learning_starts", "gamma"], at_most_one=["gamma", "tau"])



# ----------------------------------------------------------------------------------- losses
# ALGO LOGIC: SAC's losses (paper Eqs. 1-4 with a temperature α and a uniform prior).
@torch.no_grad()
def critic_target(qf_target: TwinQNetwork, actor: Actor, batch: Batch, alpha: torch.Tensor, gamma: float):
    """The soft Bellman target of Eqs. 2 and 4, a' ~ π(·|s'):
        y = r + γ(1 - d)(min_j Q̄_j(s', a') - α log π(a'|s'))."""
    next_actions, next_log_pi = actor.sample(batch.next_obs)
    next_v = qf_target(batch.next_obs, next_actions).min(0).values - alpha * next_log_pi
    return batch.rewards + gamma * (1 - batch.terminations) * next_v


def critic_loss(qf: TwinQNetwork, batch: Batch, target: torch.Tensor):
    """Soft Bellman residual of both critics against y (§4, J_Q; summed over the two critics, batch mean, without
    the 1/2, as CleanRL: Adam is invariant to the scale)."""
    q = qf(batch.obs, batch.actions)  # [2, 1, B]
    per_critic = (q - target).pow(2).flatten(1).mean(1)
    info = {"qf1_values": q[0].mean(), "qf2_values": q[1].mean(), "qf1_loss": per_critic[0], "qf2_loss": per_critic[1]}
    return per_critic.sum(), info


def actor_loss(actor: Actor, qf: TwinQNetwork, obs: torch.Tensor, alpha: torch.Tensor):
    """J_π(φ) = E[α log π(a|s) - min_j Q_j(s, a)], a = f_φ(ε; s) reparameterised (paper §4,
    without the discriminator term). The critics' weights get no gradient from it."""
    actions, log_pi = actor.sample(obs)
    q = qf(obs, actions, train_params=False).min(0).values
    return (alpha * log_pi - q).mean(), log_pi.detach()


# COPY temperature loss and gradient step: the same in every script with this block (tests/test_copies.py)
def alpha_loss(log_alpha: torch.Tensor, log_pi: torch.Tensor, target_entropy: float):
    """J(α) = E[-α (log π + H̄)] (Haarnoja et al. 2018b §5): α rises while the policy's entropy is below H̄."""
    return (-log_alpha.exp() * (log_pi + target_entropy)).mean()


def descend(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:  # one gradient step on `loss`
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
# END COPY temperature loss and gradient step


# ------------------------------------------------------------------------- the agent, its update
class SAC:
    """The networks, their optimizers and the temperature; `update()` is one training step."""

    def __init__(self, obs_dim: int, act_dim: int, action_low, action_high, args: Args, device: torch.device):
        self.args, self.precision = args, "float32"
        self.actor = Actor(obs_dim, act_dim, args.hidden_dim, action_low, action_high).to(device)
        self.qf = TwinQNetwork(obs_dim, act_dim, args.hidden_dim).to(device)
        self.qf_target = copy.deepcopy(self.qf).requires_grad_(False)
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

    def update(self, batch: Batch, update_step: int) -> dict:
        """One training step: the critics; the actor (and α) every `policy_frequency` steps, that many times
        (delayed, TD3 style); the targets every `target_network_frequency`. Returns the losses, as tensors."""
        args = self.args
        alpha = self.log_alpha.detach().exp()
        qf_loss, info = critic_loss(self.qf, batch, critic_target(self.qf_target, self.actor, batch, alpha, args.gamma))
        descend(self.q_optimizer, qf_loss)
        info["qf_loss"] = qf_loss.detach() / 2

        for _ in range(args.policy_frequency if update_step % args.policy_frequency == 0 else 0):
            pi_loss, log_pi = actor_loss(self.actor, self.qf, batch.obs, alpha)
            info["actor_loss"] = pi_loss.detach()
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

    def policy(self, obs, z: int = 0, deterministic: bool = True) -> np.ndarray:
        """The action for one observation as `env.reset()` or `env.step()` return it (obs [obs_dim] -> action
        [act_dim], numpy): the mean action, or a sample, in the precision the model trained in. One policy: z is 0."""
        if z != 0:
            raise ValueError(f"z = {z}, but SAC has one policy: z is 0")
        device = self.log_alpha.device
        obs = torch.as_tensor(obs, dtype=torch.float32, device=device).reshape(1, -1)
        with torch.inference_mode(), autocast(device, self.precision):
            actions = self.actor.deterministic(obs) if deterministic else self.actor.sample(obs)[0]
        return actions[0].cpu().numpy()

    def modules(self) -> dict:
        """Everything with a state, by name (checkpoints hold them all)."""
        return {"actor": self.actor, "qf": self.qf, "qf_target": self.qf_target,
                "q_optimizer": self.q_optimizer, "actor_optimizer": self.actor_optimizer, "log_alpha": self.log_alpha}


def load_model(path: str, device: str | torch.device = "cpu"):
    """A `--save-model` file (or a checkpoint) as (agent, args), e.g. to act with `agent.policy`."""
    return checkpoint.load_model(path, SCRIPT, Args, SAC, SAVED_NETWORKS, device)


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


# --------------------------------------------------------------------------------- networks
class Batch(NamedTuple):  # a step of the env, or a batch from the replay buffer (run_utils.buffer)
    obs: torch.Tensor  # [1, B, obs_dim]
    actions: torch.Tensor  # [1, B, act_dim]
    rewards: torch.Tensor  # [1, B]
    next_obs: torch.Tensor  # [1, B, obs_dim]
    terminations: torch.Tensor  # [1, B], 1.0 where s' is terminal (no bootstrap); truncations are 0


class Actor(nn.Module):
    """Tanh-squashed Gaussian policy π_φ(a|s), rescaled to the action bounds."""

    LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0

    def __init__(self, obs_dim: int, act_dim: int, hidden_dim: int, low, high):
        super().__init__()
        self.net = EnsembleMLP(1, [obs_dim, hidden_dim, hidden_dim, 2 * act_dim])  # μ and log σ
        low, high = (torch.as_tensor(x, dtype=torch.float32) for x in (low, high))
        self.register_buffer("action_scale", (high - low) / 2)
        self.register_buffer("action_bias", (high + low) / 2)

    def forward(self, obs: torch.Tensor):
        """obs [..., obs_dim] -> mean and log σ [..., act_dim]."""
        mean, log_std = self.net(obs.reshape(1, -1, obs.shape[-1])).view(*obs.shape[:-1], -1).chunk(2, dim=-1)
        log_std = self.LOG_STD_MIN + 0.5 * (self.LOG_STD_MAX - self.LOG_STD_MIN) * (torch.tanh(log_std) + 1)
        return mean, log_std

    def sample(self, obs: torch.Tensor):
        """a = f_φ(ε; s) = tanh(μ + σ·ε)·scale + bias, ε ~ N(0, I), and log π(a|s) =
        log N(u; μ, σ) - Σ log(scale·(1 - tanh(u)²)), u = μ + σ·ε, written out (no torch.distributions)
        with log(1 - tanh(u)²) = 2·(log 2 - u - softplus(-2u))."""
        mean, log_std = self(obs)
        noise = torch.randn_like(mean)
        pre_tanh = mean + log_std.exp() * noise
        action = torch.tanh(pre_tanh) * self.action_scale + self.action_bias
        log_gaussian = -0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)
        log_det_jacobian = 2 * (math.log(2) - pre_tanh - F.softplus(-2 * pre_tanh)) + self.action_scale.log()
        return action, (log_gaussian - log_det_jacobian).sum(-1)

    def deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        """The mean action tanh(μ)·scale + bias, used for evaluation."""
        return torch.tanh(self(obs)[0]) * self.action_scale + self.action_bias


class TwinQNetwork(nn.Module):
    """Q_1(s, a) and Q_2(s, a) as ONE ensemble of two MLPs: one batched matmul per layer runs both."""

    def __init__(self, obs_dim: int, act_dim: int, hidden_dim: int):
        super().__init__()
        self.net = EnsembleMLP(2, [obs_dim + act_dim, hidden_dim, hidden_dim, 1])

    def forward(self, obs: torch.Tensor, actions: torch.Tensor, train_params: bool = True) -> torch.Tensor:
        """[2, ...]: both critics' values of obs [..., obs_dim] and actions [..., act_dim]. With
        `train_params=False` a loss sends gradient to the actions (the actor loss), not to the critics."""
        x = torch.cat([obs, actions], dim=-1)
        return self.net(x.reshape(1, -1, x.shape[-1]).expand(2, -1, -1), train_params).view(2, *x.shape[:-1])


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
def main(args: Args) -> dict | None:
    """Train, evaluate, and return the evaluation (the content of eval.json)."""
    check_args(args)
    run = Run(args, __file__)  # seeds, threads, device; with --resume, the checkpoint to continue
    device = run.device

    envs = make_envs(args.env_id, num_envs=1)
    dims = checkpoint.env_dims(envs)  # obs_dim, act_dim, action_low, action_high
    agent = SAC(**dims, args=args, device=device)
    rb = ReplayBuffer(Batch, args.buffer_size, 1, device)
    obs, start_step = run.start(agent, rb, envs, dims, args.total_timesteps)  # seeds and resets envs
    # Acting and the update as the run computes them: with --compile through torch.compile; on CUDA as CUDA
    # graphs (--cuda-graphs), the update one per schedule (does a step train the actor, update the targets?),
    # each taking its batch's rows and gathering the batch from the buffer
    act = run.compiled(lambda obs: agent.actor.sample(obs)[0], key=lambda obs: "act")
    train = run.compiled(lambda rows, step: agent.update(rb.batch(rows), step),
                         key=lambda rows, step: (step % args.policy_frequency == 0,
                                                 step % args.target_network_frequency == 0))

    with run.training():  # TRY NOT TO MODIFY: SIGINT/SIGTERM -> checkpoint and exit; NaN -> stop
        for global_step in range(start_step, args.total_timesteps):
            # ALGO LOGIC: act
            if global_step < args.learning_starts:
                actions = envs.action_space.sample()
            else:
                with torch.inference_mode(), run.autocast():  # autocast: bf16 products under --bf16
                    actions = act(torch.as_tensor(obs, dtype=torch.float32, device=device)).cpu().numpy()

            next_obs, rewards, terminations, truncations, infos = envs.step(actions)
            run.log.episodes(infos, global_step)
            # ALGO LOGIC: store (truncated transitions are stored with termination 0, so they bootstrap)
            rb.add(obs=obs, actions=actions, rewards=rewards, next_obs=transitions_to_store(next_obs, infos),
                   terminations=terminations)
            obs = next_obs

            if global_step >= args.learning_starts:  # ALGO LOGIC: update
                with run.autocast():
                    info = train(rb.rows(args.batch_size), global_step)
                run.log_losses(info, global_step, global_step)
            run.step_done(global_step + 1, obs)  # progress, periodic checkpoint

    # TRY NOT TO MODIFY: --save-model, the evaluation (eval.json) and --capture-video
    deterministic = lambda obs, z: agent.actor.deterministic(obs)  # noqa: E731  (one policy: z is 0)
    result = run.finish(agent, SAVED_NETWORKS, deterministic, make_envs, "SAC", 1)
    envs.close()
    return result


if __name__ == "__main__":
    cli.main_guard(main, Args, __file__)
