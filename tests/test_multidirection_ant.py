"""Multidirection Ant checked against its definition (SPEC §6): gymnasium's Ant-v4 with the
forward reward ẋ replaced by the planar speed ‖(ẋ, ẏ)‖₂; everything else unchanged."""

import warnings

import gymnasium as gym
import numpy as np
import pytest

import multidirection_ant  # noqa: F401  (importing registers MultiDirectionAnt-v0)

N_STEPS = 50
SEED = 7
HEALTHY_REWARD = 1.0  # Ant-v4 defaults
CTRL_COST_WEIGHT = 0.5


def make(env_id):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "Ant-v4 is out of date"
        return gym.make(env_id)


@pytest.fixture(scope="module")
def rollout():
    """MultiDirectionAnt-v0 and Ant-v4, seeded alike and driven with the same random actions."""
    mant, ant = make("MultiDirectionAnt-v0"), make("Ant-v4")
    obs_m, _ = mant.reset(seed=SEED)
    obs_a, _ = ant.reset(seed=SEED)
    np.testing.assert_array_equal(obs_m, obs_a)
    actions = np.random.default_rng(SEED).uniform(-1.0, 1.0, size=(N_STEPS, 8))
    steps = []
    for action in actions:
        before = mant.unwrapped.get_body_com("torso")[:2].copy()
        out_m = mant.step(action)
        after = mant.unwrapped.get_body_com("torso")[:2].copy()
        out_a = ant.step(action)
        steps.append(dict(action=action, before=before, after=after, m=out_m, a=out_a))
        if out_m[2] or out_m[3] or out_a[2] or out_a[3]:
            break
    assert len(steps) >= 40, "the random rollout ended too early to test anything"
    return dict(mant=mant, ant=ant, steps=steps)


def test_registered_on_import_with_ant_v4_time_limit():
    assert "MultiDirectionAnt-v0" in gym.registry
    assert gym.spec("MultiDirectionAnt-v0").max_episode_steps == gym.spec("Ant-v4").max_episode_steps == 1000


def test_observation_space_is_ant_v4s_without_xy(rollout):
    mant, ant = rollout["mant"], rollout["ant"]
    assert mant.observation_space == ant.observation_space
    assert mant.observation_space.shape == (27,)
    # the observation is (qpos without x, y ; qvel): 13 + 14 = 27
    data = mant.unwrapped.data
    obs = rollout["steps"][-1]["m"][0]
    np.testing.assert_array_equal(obs, np.concatenate([data.qpos[2:], data.qvel]))
    assert mant.unwrapped.dt == ant.unwrapped.dt


def test_reward_is_planar_speed_plus_healthy_minus_ctrl(rollout):
    gaps = []
    for s in rollout["steps"]:
        _, reward, terminated, _, info = s["m"]
        assert not terminated
        speed = np.hypot(info["x_velocity"], info["y_velocity"])
        # costs as Ant-v4 defines them, computed from the action itself
        assert info["reward_ctrl"] == pytest.approx(-CTRL_COST_WEIGHT * np.sum(s["action"] ** 2), rel=1e-6)
        assert info["reward_survive"] == HEALTHY_REWARD
        expected = speed + info["reward_survive"] + info["reward_ctrl"]
        assert reward == pytest.approx(expected, rel=0, abs=1e-5)
        gaps.append(speed - info["x_velocity"])
    # the rollout must tell ‖(ẋ, ẏ)‖ apart from ẋ and from |ẋ| on many steps, or it proves nothing
    assert sum(g > 0.05 for g in gaps) >= 10
    assert any(s["m"][4]["x_velocity"] < -0.05 for s in rollout["steps"])


def test_speed_is_torso_displacement_over_dt(rollout):
    dt = rollout["mant"].unwrapped.dt
    for s in rollout["steps"]:
        _, reward, _, _, info = s["m"]
        velocity = (s["after"] - s["before"]) / dt
        np.testing.assert_allclose([info["x_velocity"], info["y_velocity"]], velocity, rtol=1e-9, atol=1e-9)
        speed = np.linalg.norm(velocity)
        ctrl = CTRL_COST_WEIGHT * np.sum(s["action"] ** 2)
        assert reward == pytest.approx(speed + HEALTHY_REWARD - ctrl, rel=0, abs=1e-5)


def test_same_as_ant_v4_except_forward_reward(rollout):
    for s in rollout["steps"]:
        obs_m, rew_m, term_m, trunc_m, info_m = s["m"]
        obs_a, rew_a, term_a, trunc_a, info_a = s["a"]
        np.testing.assert_array_equal(obs_m, obs_a)
        assert (term_m, trunc_m) == (term_a, trunc_a)
        assert info_m["x_velocity"] == info_a["x_velocity"]
        speed = np.hypot(info_a["x_velocity"], info_a["y_velocity"])
        assert rew_m - rew_a == pytest.approx(speed - info_a["x_velocity"], rel=0, abs=1e-9)


def test_unhealthy_termination_as_ant_v4():
    """Lift the torso out of Ant's healthy z-range (0.2, 1.0): both envs must terminate alike."""
    outs = []
    for env_id in ["MultiDirectionAnt-v0", "Ant-v4"]:
        env = make(env_id)
        env.reset(seed=SEED)
        u = env.unwrapped
        qpos, qvel = u.data.qpos.copy(), u.data.qvel.copy()
        qpos[2] = 3.0
        qvel[:2] = (-1.0, 2.0)  # moving in -x: speed 2.24 vs ẋ = -1
        u.set_state(qpos, qvel)
        outs.append(env.step(np.zeros(8)))
    (obs_m, rew_m, term_m, _, info_m), (obs_a, rew_a, term_a, _, info_a) = outs
    assert term_m is True and term_a is True
    np.testing.assert_array_equal(obs_m, obs_a)
    speed = np.hypot(info_a["x_velocity"], info_a["y_velocity"])
    assert rew_m == pytest.approx(speed + HEALTHY_REWARD, rel=0, abs=1e-9)  # zero action: no ctrl cost
    assert rew_m - rew_a == pytest.approx(speed - info_a["x_velocity"], rel=0, abs=1e-9)
