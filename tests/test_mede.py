"""MEDE (mede_continuous.py): losses against their formulas, where the gradients go,
separate networks against one agent at a time, z bookkeeping, bad input, smoke runs."""

import copy
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import mede_continuous as mede

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "mede_continuous.py")


def fake_batch(rewards, terminations, z, obs_dim=2, act_dim=2):
    rewards = torch.tensor(rewards, dtype=torch.float32)
    members, size = rewards.shape
    return mede.Batch(obs=torch.zeros(members, size, obs_dim), actions=torch.zeros(members, size, act_dim),
                      rewards=rewards, next_obs=torch.zeros(members, size, obs_dim),
                      terminations=torch.tensor(terminations, dtype=torch.float32), z=torch.tensor(z))


def small_agent(separate=False, num_z=3, seed=0, **overrides):
    torch.manual_seed(seed)
    args = mede.Args(num_z=num_z, separate_networks=separate, hidden_dim=16, disc_hidden_dim=16, **overrides)
    return mede.MEDE(4, 2, -np.ones(2), np.ones(2), args, torch.device("cpu"))


def random_batch(members, size=8, obs_dim=4, act_dim=2, num_z=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    z = torch.randint(num_z, (members, size), generator=g) if members == 1 else \
        torch.arange(members).unsqueeze(1).expand(members, size).clone()
    return mede.Batch(obs=torch.randn(members, size, obs_dim, generator=g),
                      actions=torch.rand(members, size, act_dim, generator=g) * 2 - 1,
                      rewards=torch.randn(members, size, generator=g),
                      next_obs=torch.randn(members, size, obs_dim, generator=g),
                      terminations=(torch.rand(members, size, generator=g) < 0.3).float(), z=z)


# ------------------------------------------------------------------ losses, hand-computed
def test_critic_target_is_eq6_with_the_alpha_beta_log_q_term():
    # B = 2, one member. Next step: log π' = [-1, 0.5], log q(z|s',a') = [-1.5, -2],
    # Q̄_1' = [3, 5], Q̄_2' = [4, 1]; r = [1, 2], d = [0, 1]; c = 2, γ = 0.9, α = 0.5, β = 2.
    # y_0 = 2·1 + 0.9·(min(3, 4) - 0.5·(-1 - 2·(-1.5))) = 2 + 0.9·(3 - 1) = 3.8
    # y_1 = 2·2 = 4                                        (terminal: no bootstrap)
    # Q_1 = [4, 3]: ((4 - 3.8)² + (3 - 4)²) / 2 = (0.04 + 1) / 2 = 0.52
    # Q_2 = [3, 5]: ((3 - 3.8)² + (5 - 4)²) / 2 = (0.64 + 1) / 2 = 0.82       total 1.34
    batch = fake_batch([[1.0, 2.0]], [[0.0, 1.0]], [[0, 1]])
    actor = SimpleNamespace(sample=lambda s, z: (torch.zeros(1, 2, 2), torch.tensor([[-1.0, 0.5]])))
    disc = SimpleNamespace(log_prob=lambda x, z, train_params=True: torch.tensor([[-1.5, -2.0]]))
    qf_target = lambda s, z, a, train_params=True: torch.tensor([[[3.0, 5.0]], [[4.0, 1.0]]])  # noqa: E731
    qf_online = lambda s, z, a, train_params=True: torch.tensor([[[4.0, 3.0]], [[3.0, 5.0]]])  # noqa: E731
    target = mede.critic_target(qf_target, actor, disc, batch, alpha=torch.tensor(0.5), beta=2.0, reward_scale=2.0,
                                gamma=0.9)
    assert torch.allclose(target, torch.tensor([[3.8, 4.0]]))
    loss, info = mede.critic_loss(qf_online, batch, target)
    assert loss.item() == pytest.approx(1.34, abs=1e-6)
    assert info["qf1_loss"].item() == pytest.approx(0.52, abs=1e-6)
    assert info["qf2_loss"].item() == pytest.approx(0.82, abs=1e-6)


def test_actor_loss_is_the_paper_objective():
    # log π = [-1, 2], log q = [-0.5, -3], min_j Q_j = [1, 4]; α = 0.5, β = 2:
    # 0.5·(-1 + 1) - 1 = -1;  0.5·(2 + 6) - 4 = 0  -> mean -0.5
    actor = SimpleNamespace(sample=lambda s, z: (torch.zeros(1, 2, 2), torch.tensor([[-1.0, 2.0]])))
    disc = SimpleNamespace(log_prob=lambda x, z, train_params=True: torch.tensor([[-0.5, -3.0]]))
    qf = lambda s, z, a, train_params=True: torch.tensor([[[1.0, 6.0]], [[2.0, 4.0]]])  # noqa: E731
    loss, _ = mede.actor_loss(actor, qf, disc, torch.zeros(1, 2, 2), torch.tensor([[0, 1]]), torch.tensor(0.5),
                              beta=2.0, disc_grad=True)
    assert loss.item() == pytest.approx(-0.5, abs=1e-6)


def test_discriminator_loss_is_cross_entropy_against_the_true_z():
    disc = mede.Discriminator(3, 8, 4)
    x, z = torch.randn(10, 3), torch.randint(4, (10,))
    logits = disc.logits(x)
    loss, mean_log_q, accuracy = disc.loss(x, z)
    assert loss.item() == pytest.approx(F.cross_entropy(logits, z).item(), abs=1e-6)
    assert mean_log_q.item() == pytest.approx(-loss.item(), abs=1e-6)
    assert accuracy.item() == pytest.approx((logits.argmax(-1) == z).float().mean().item())
    assert torch.allclose(disc.log_prob(x, z), logits.log_softmax(-1)[torch.arange(10), z])


def test_policy_input_concatenates_a_one_hot_z_only_for_shared_networks():
    obs, z = torch.randn(1, 3, 2), torch.tensor([[2, 0, 1]])
    shared = mede.policy_input(obs, z, num_z=3, separate=False)
    assert torch.equal(shared[..., :2], obs)
    assert torch.equal(shared[..., 2:], torch.eye(3)[[2, 0, 1]].unsqueeze(0))
    assert mede.policy_input(obs, z, num_z=3, separate=True) is obs


def test_ensemble_members_are_independent_mlps():
    net = mede.EnsembleMLP(3, [4, 8, 5])
    x = torch.randn(3, 6, 4)
    for m in range(3):
        hidden = F.relu(F.linear(x[m], net.weights[0][m].T, net.biases[0][m, 0]))
        expected = F.linear(hidden, net.weights[1][m].T, net.biases[1][m, 0])
        assert torch.allclose(net(x)[m], expected, atol=1e-6)


# ------------------------------------------------------------------------- gradient flow
def actor_grads(agent, batch, disc_grad, seed=0):
    agent.actor.zero_grad(set_to_none=True)
    torch.manual_seed(seed)  # the same ε every time
    loss, _ = mede.actor_loss(agent.actor, agent.qf, agent.disc_sa, batch.obs, batch.z, torch.tensor(0.3), 1.0,
                              disc_grad)
    loss.backward()
    return [p.grad.clone() for p in agent.actor.parameters()]


@pytest.mark.parametrize("separate", [False, True])
def test_discriminator_gradient_reaches_the_actor_only_with_disc_grad(separate):
    agent = small_agent(separate)
    batch = random_batch(3 if separate else 1)
    before = {flag: actor_grads(agent, batch, flag) for flag in (True, False)}
    with torch.no_grad():  # change ONLY the discriminator's weights
        for p in agent.disc_sa.parameters():
            p.add_(torch.randn_like(p))
    after = {flag: actor_grads(agent, batch, flag) for flag in (True, False)}
    assert any(not torch.allclose(b, a) for b, a in zip(before[True], after[True])), \
        "with the discriminator gradient on, the actor's gradient must depend on q_ρ"
    assert all(torch.equal(b, a) for b, a in zip(before[False], after[False])), \
        "--no-disc-grad must cut every gradient path from q_ρ to the actor"


def test_actor_loss_steps_neither_the_discriminator_nor_the_critics():
    agent = small_agent()
    batch = random_batch(1)
    actor_grads(agent, batch, disc_grad=True)
    for module in (agent.disc_sa, agent.disc_s, agent.qf):
        assert all(p.grad is None for p in module.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in agent.actor.parameters())


@pytest.mark.parametrize("separate", [False, True])
def test_the_measurement_discriminator_feeds_no_loss_of_the_agent(separate):
    agent = small_agent(separate)
    other = copy.deepcopy(agent)
    with torch.no_grad():
        for p in other.disc_s.parameters():
            p.add_(torch.randn_like(p))
    batch = random_batch(3 if separate else 1)
    for a in (agent, other):
        torch.manual_seed(0)
        a.update(batch, 0)
    for name in ("actor", "qf", "qf_target", "disc_sa"):
        for p, q in zip(getattr(agent, name).parameters(), getattr(other, name).parameters()):
            assert torch.equal(p, q), f"q(z|s) changed the {name}"


def test_update_moves_the_targets_by_tau_and_trains_the_discriminator():
    agent = small_agent(tau=0.25)
    batch = random_batch(1)
    online_before = [p.detach().clone() for p in agent.qf.parameters()]
    target_before = [p.detach().clone() for p in agent.qf_target.parameters()]
    disc_before = [p.detach().clone() for p in agent.disc_sa.parameters()]
    agent.update(batch, 0)
    for t_old, t_new, online in zip(target_before, agent.qf_target.parameters(), agent.qf.parameters()):
        assert torch.allclose(t_new, 0.75 * t_old + 0.25 * online.detach(), atol=1e-6)
    assert any(not torch.equal(a, b) for a, b in zip(online_before, agent.qf.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(disc_before, agent.disc_sa.parameters()))


# --------------------------------------------------- separate networks = one agent at a time
def member_slice(agent, m):
    """Agent m of a separate-networks MEDE, as a one-member MEDE holding copies of its weights."""
    single = small_agent(separate=True, num_z=agent.num_z)
    members = agent.num_z
    with torch.no_grad():
        for mine, theirs in zip(single.actor.parameters(), agent.actor.parameters()):
            mine.data = theirs[m:m + 1].clone()
        for net_single, net_all in ((single.qf, agent.qf), (single.qf_target, agent.qf_target)):
            for mine, theirs in zip(net_single.parameters(), net_all.parameters()):
                mine.data = theirs[[m, members + m]].clone()  # rows of Q_1 and Q_2 of member m
    single.disc_sa = agent.disc_sa
    return single


def test_separate_networks_equal_each_agent_run_alone(monkeypatch):
    agent = small_agent(separate=True, num_z=3)
    batch = random_batch(3)
    noise = torch.randn(3, 8, 2)
    real_randn_like = torch.randn_like
    current = {"slice": slice(None)}
    monkeypatch.setattr(torch, "randn_like", lambda x: noise[current["slice"]].clone() if x.shape[-1] == 2
                        else real_randn_like(x))

    def losses_and_grads(a, b):
        a.qf.zero_grad(set_to_none=True)
        a.actor.zero_grad(set_to_none=True)
        target = mede.critic_target(a.qf_target, a.actor, a.disc_sa, b, torch.tensor(0.3), 1.0, 1.0, 0.99)
        q_loss, _ = mede.critic_loss(a.qf, b, target)
        q_loss.backward()
        pi_loss, _ = mede.actor_loss(a.actor, a.qf, a.disc_sa, b.obs, b.z, torch.tensor(0.3), 1.0, True)
        pi_loss.backward()
        return q_loss, pi_loss, [p.grad for p in a.qf.parameters()], [p.grad for p in a.actor.parameters()]

    q_all, pi_all, qgrad_all, pigrad_all = losses_and_grads(agent, batch)
    q_sum, pi_sum = 0.0, 0.0
    for m in range(3):
        current["slice"] = slice(m, m + 1)
        single = member_slice(agent, m)
        one = mede.Batch(*(x[m:m + 1] for x in batch))
        q_m, pi_m, qgrad_m, pigrad_m = losses_and_grads(single, one)
        q_sum, pi_sum = q_sum + q_m.item(), pi_sum + pi_m.item()
        for g_all, g_m in zip(qgrad_all, qgrad_m):
            assert torch.allclose(g_all[[m, 3 + m]], g_m, atol=1e-5)
        for g_all, g_m in zip(pigrad_all, pigrad_m):
            assert torch.allclose(g_all[m:m + 1], g_m, atol=1e-5)
    assert q_all.item() == pytest.approx(q_sum, rel=1e-5)
    assert pi_all.item() == pytest.approx(pi_sum, rel=1e-5)


def test_separate_agents_act_on_their_own_envs():
    agent = small_agent(separate=True, num_z=3)
    obs = torch.randn(3, 4)
    together = agent.act(obs, torch.arange(3), deterministic=True)
    for m in range(3):
        alone = member_slice(agent, m).actor.deterministic(obs[m].view(1, 1, 4), torch.zeros(1, 1, dtype=torch.long))
        assert torch.allclose(together[m], alone.view(-1), atol=1e-6)


def test_discriminator_batch_takes_an_equal_share_of_every_agent():
    batch = random_batch(4, size=8, num_z=4)
    obs, actions, z = mede.discriminator_batch(batch)
    assert obs.shape == (8, 4) and actions.shape == (8, 2)
    assert z.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert torch.equal(obs[2:4], batch.obs[1, :2])


# ------------------------------------------------------------------- z in the replay buffer
def run_main(tmp_path, monkeypatch, **kwargs):
    monkeypatch.chdir(tmp_path)
    defaults = dict(env_id="MultiGoal-v0", hidden_dim=16, disc_hidden_dim=16, learning_starts=100,
                    total_timesteps=300, eval_episodes=1, checkpoint_every=0, cuda=False)
    args = mede.Args(**{**defaults, **kwargs})
    result = mede.main(args)
    (run_dir,) = (tmp_path / "runs").iterdir()
    return result, run_dir


def test_z_is_drawn_per_episode_and_stored_with_every_transition(tmp_path, monkeypatch):
    _, run_dir = run_main(tmp_path, monkeypatch, total_timesteps=600, checkpoint_every=600, num_z=4)
    buffer = torch.load(run_dir / "checkpoint.pt", weights_only=False)["buffer"]
    z, obs, next_obs = buffer["z"][:, 0], buffer["obs"][:, 0], buffer["next_obs"][:, 0]
    continues = (next_obs[:-1] == obs[1:]).all(-1)  # the same episode goes on
    assert continues.sum() > 400 and (~continues).sum() >= 10
    assert torch.equal(z[1:][continues], z[:-1][continues]), "z changed in the middle of an episode"
    assert set(z.tolist()) == {0, 1, 2, 3}
    assert (z[1:][~continues] != z[:-1][~continues]).any(), "z is never redrawn at a new episode"


def test_env_resets_warm_up_actions_and_z_draws_come_from_independent_streams(tmp_path, monkeypatch):
    """SPEC §2: one seed spawns a stream for each; no two of them start from the same random state
    (default_rng(seed), action_space.seed(seed) and reset(seed=seed) would all start from one)."""
    import gymnasium.utils.seeding as seeding
    started = {}  # what each generator's state was when it was made
    real_np_random, real_default_rng = seeding.np_random, np.random.default_rng

    def recorded(kind, make):
        def make_and_record(seed=None):
            made = make(seed)
            generator = made[0] if isinstance(made, tuple) else made
            if seed is not None:  # (spaces make unseeded generators of their own when they are built)
                started.setdefault(kind, []).append(str(generator.bit_generator.state["state"]))
            return made
        return make_and_record

    monkeypatch.setattr(seeding, "np_random", recorded("gymnasium", real_np_random))
    monkeypatch.setattr(np.random, "default_rng", recorded("numpy", real_default_rng))
    run_main(tmp_path, monkeypatch, num_z=4, total_timesteps=200, learning_starts=200, eval_episodes=0)
    # gymnasium's: the action space's (warm-up actions) and env 0's (its resets); numpy's: the z draws
    streams = started["gymnasium"][:2] + started["numpy"][:1]
    assert len(streams) == 3 and len(set(streams)) == 3, streams


def test_separate_networks_env_i_always_runs_z_i(tmp_path, monkeypatch):
    _, run_dir = run_main(tmp_path, monkeypatch, separate_networks=True, num_z=3, total_timesteps=300,
                          checkpoint_every=300, buffer_size=3000)
    buffer = torch.load(run_dir / "checkpoint.pt", weights_only=False)["buffer"]
    assert buffer["z"].shape == (100, 3)
    assert torch.equal(buffer["z"], torch.arange(3).expand(100, 3))


# ----------------------------------------------------------------------- runs and bad input
def run_script(*flags, cwd):
    return subprocess.run([sys.executable, SCRIPT, *flags], cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("flags, message", [
    (["--num-z", "1"], "--num-z must be at least 2"),
    (["--num-z", "0"], "--num-z must be at least 2"),
    (["--total-timesteps", "0"], "--total-timesteps must be positive"),
    (["--learning-starts", "-1"], "--learning-starts must be >= 0"),
    (["--env-id", "NoSuchEnv-v0"], "cannot make environment 'NoSuchEnv-v0'"),
    (["--env-id", "nomod:X-v0"], "cannot make environment 'nomod:X-v0': No module named 'nomod'"),
    (["--env-id", "CartPole-v1"], "continuous (Box) action space"),
    (["--separate-networks", "--num-z", "8", "--batch-size", "4"], "--batch-size (4) must be at least --num-z (8)"),
])
def test_bad_input_gives_one_clear_line(tmp_path, flags, message):
    short = [] if "--total-timesteps" in flags else ["--total-timesteps", "50"]  # in case it runs
    out = run_script(*flags, *short, cwd=tmp_path)
    lines = [line for line in out.stderr.splitlines() if "WARN" not in line and "logger.deprecation" not in line]
    assert out.returncode == 2
    assert len(lines) == 1 and lines[0].startswith("mede_continuous.py: error:") and message in lines[0], out.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("env_id, extra", [("MultiGoal-v0", []), ("Hopper-v4", []),
                                           ("Hopper-v4", ["--separate-networks", "--num-z", "2"])])
def test_smoke_run_writes_eval_json_and_the_figure2_tags(tmp_path, env_id, extra):
    out = run_script("--env-id", env_id, "--total-timesteps", "300", "--learning-starts", "100", "--hidden-dim", "32",
                     "--disc-hidden-dim", "32", "--eval-episodes", "2", "--num-z", "3", *extra, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    result = json.loads((run_dir / "eval.json").read_text())
    num_z = 2 if extra else 3
    assert result["env_id"] == env_id and result["num_z"] == num_z and result["global_step"] == 300
    assert [entry["z"] for entry in result["per_z"]] == list(range(num_z))
    assert all(len(entry["returns"]) == 2 for entry in result["per_z"])
    assert result["avg"] == pytest.approx(np.mean([e["mean"] for e in result["per_z"]]))
    assert result["max"] == pytest.approx(max(e["mean"] for e in result["per_z"]))
    assert ("goals" in result["per_z"][0]) == env_id.startswith("MultiGoal")

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(run_dir)).Reload()
    tags = set(events.Tags()["scalars"])
    for tag in ("charts/log_q_z_given_sa", "charts/log_q_z_given_s", "charts/accuracy_z_given_sa",
                "charts/accuracy_z_given_s", "charts/episodic_return", "losses/qf_loss", "losses/actor_loss"):
        assert tag in tags


# --------------------------------------------------------------------------------- learning
def test_mede_learns_distinct_goals_on_multigoal(tmp_path, monkeypatch):
    """The paper's Multigoal setting (hidden 128, α 0.3, β 1), 20k steps (about three minutes on one
    core): the four deterministic policies reach at least three different goals, and every episode
    reaches one. With these settings seeds 1-5 sent their four z to 4, 4, 2, 3, 4 different goals
    (each z's most common goal) and to at least 3 goals counting every episode, this test's measure."""
    result, _ = run_main(tmp_path, monkeypatch, num_z=4, hidden_dim=128, disc_hidden_dim=256, total_timesteps=20000,
                         learning_starts=5000, eval_episodes=10, seed=1)
    goals = [g for entry in result["per_z"] for g in entry["goals"]]
    assert -1 not in goals, "a deterministic policy failed to reach any goal"
    assert len(set(goals)) >= 3, f"the four policies reach only goals {sorted(set(goals))}"
