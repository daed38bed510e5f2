"""Multigoal environments checked against their definition (SPEC §6), not against their code.

Most tests put the point at positions known exactly: from any start near the origin, eight
steps of (±1, ±1) end exactly in the corner (±7, ±7) because of the walls, and from there
integer steps reach any integer position exactly. Expected rewards are then computed by
hand (comments give the arithmetic) from the goal layout in the SPEC.

Four-goal layout (MultiGoal-v0): g0=(5,0), g1=(-5,0), g2=(0,5), g3=(0,-5).
Two-goal layout (MultiGoalTwo-v0): g0=(-3.5,-3.5), g1=(3.6,3.6).
"""

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import multigoal_env  # noqa: F401  (importing registers the environment ids)

IDS = ["MultiGoal-v0", "MultiGoalTwo-v0", "MultiGoalCanonical-v0"]
R = math.sqrt


def make(env_id="MultiGoal-v0", **kwargs):
    """The bare environment (no TimeLimit), so that long hand-made walks are possible."""
    return gym.make(env_id, **kwargs).unwrapped


def step(env, action):
    return env.step(np.asarray(action, dtype=np.float32))


def walk(env, actions):
    """Take `actions`; none of them may end the episode. Returns the last step's output."""
    out = None
    for i, a in enumerate(actions):
        out = step(env, a)
        assert not out[2] and not out[3], f"episode ended during a walk, at step {i}: {out}"
    return out


def to_corner(env, sx, sy, seed=0):
    """Reset, then push towards corner (7sx, 7sy) until the walls stop the point there."""
    env.reset(seed=seed)
    out = walk(env, [(sx, sy)] * 8)
    np.testing.assert_array_equal(out[0], [7.0 * sx, 7.0 * sy])
    return out


def check(out, position, reward, terminated=False, goal_index=-1):
    obs, rew, term, trunc, info = out
    np.testing.assert_allclose(obs, position, rtol=0, atol=1e-6)
    assert rew == pytest.approx(reward, rel=0, abs=1e-5)
    assert term is terminated
    assert trunc is False
    assert info["goal_index"] == goal_index


# ---------------------------------------------------------------- spaces and dynamics


@pytest.mark.parametrize("env_id", IDS)
def test_spaces_are_exactly_the_spec_boxes(env_id):
    env = gym.make(env_id)
    obs_space, act_space = env.observation_space, env.action_space
    assert isinstance(obs_space, gym.spaces.Box) and isinstance(act_space, gym.spaces.Box)
    assert obs_space.shape == (2,) and act_space.shape == (2,)
    np.testing.assert_array_equal(obs_space.low, [-7, -7])
    np.testing.assert_array_equal(obs_space.high, [7, 7])
    np.testing.assert_array_equal(act_space.low, [-1, -1])
    np.testing.assert_array_equal(act_space.high, [1, 1])
    obs, _ = env.reset(seed=0)
    assert obs.shape == (2,) and obs in obs_space


def test_step_adds_the_action_to_the_position():
    env = make()
    s, _ = env.reset(seed=3)
    s = s.astype(np.float64)
    for a in [(0.3, -0.2), (-0.7, 0.9), (0.05, 0.0), (0.0, -1.0)]:
        a32 = np.asarray(a, dtype=np.float32)
        obs, *_ = env.step(a32)
        s = s + a32.astype(np.float64)  # s' = s + a (no dt factor, no swap of x and y)
        np.testing.assert_allclose(obs, s, rtol=0, atol=1e-5)


@pytest.mark.parametrize("sx, sy", [(1, 1), (-1, 1), (-1, -1), (1, -1)])
def test_walls_clip_the_position_to_the_box(sx, sy):
    env = make()
    to_corner(env, sx, sy)  # 8 unit steps from ~0 would overshoot to ~8 without the wall
    # pushing further into the corner: stays there
    check(step(env, (sx, sy)), (7 * sx, 7 * sy), -R(53))
    # push into one wall while moving along the other: only the blocked coordinate is clipped
    obs, *_ = step(env, (-0.5 * sx, sy))
    np.testing.assert_array_equal(obs, [6.5 * sx, 7 * sy])
    obs, *_ = step(env, (sx, -0.5 * sy))
    np.testing.assert_array_equal(obs, [7 * sx, 6.5 * sy])


def test_out_of_range_actions_are_clipped_per_coordinate():
    env = make()
    s, _ = env.reset(seed=5)
    s = s.astype(np.float64)
    # (3, 0.5) -> (1, 0.5): clipped coordinate-wise, not rescaled to unit norm
    obs, *_ = step(env, (3.0, 0.5))
    s = s + (1.0, 0.5)
    np.testing.assert_allclose(obs, s, rtol=0, atol=1e-5)
    obs, *_ = step(env, (-100.0, -2.0))
    s = s + (-1.0, -1.0)
    np.testing.assert_allclose(obs, s, rtol=0, atol=1e-5)
    # from a corner, a huge action moves exactly one unit
    env2 = make()
    to_corner(env2, -1, -1)
    obs, *_ = step(env2, (2.5, -3.0))
    np.testing.assert_array_equal(obs, [-6.0, -7.0])
    obs, *_ = step(env2, (1e6, 1e6))
    np.testing.assert_array_equal(obs, [-5.0, -6.0])


# ---------------------------------------------------------------- start distribution and seeding


def test_start_distribution_is_normal_with_std_0_1():
    env = make()
    env.reset(seed=12345)
    starts = np.array([env.reset()[0] for _ in range(4000)], dtype=np.float64)
    # seeded, so deterministic; the margins are also >= 6 standard errors wide
    np.testing.assert_allclose(starts.mean(axis=0), [0, 0], atol=0.01)  # SE 0.0016
    np.testing.assert_allclose(starts.std(axis=0), [0.1, 0.1], atol=0.01)  # SE 0.0011
    # shape of a normal, not e.g. a uniform with the same std (which has 57.7% within 1 std)
    within_1 = np.mean(np.abs(starts) < 0.1)
    within_2 = np.mean(np.abs(starts) < 0.2)
    assert 0.65 < within_1 < 0.72  # N: 0.683, SE 0.005
    assert 0.94 < within_2 < 0.97  # N: 0.954, SE 0.002
    # the two coordinates are drawn independently
    assert abs(np.corrcoef(starts[:, 0], starts[:, 1])[0, 1]) < 0.08  # SE 0.016


def test_reset_puts_the_point_back_near_the_origin():
    env = make()
    to_corner(env, 1, 1)
    obs, info = env.reset()
    assert np.all(np.abs(obs) < 0.6)
    # and the walk starts over from there (no stale position)
    obs2, *_ = step(env, (0.5, 0.5))
    np.testing.assert_allclose(obs2, obs.astype(np.float64) + 0.5, rtol=0, atol=1e-5)


@pytest.mark.parametrize("env_id", IDS)
def test_seeding(env_id):
    a, b = gym.make(env_id), gym.make(env_id)
    s_a, _ = a.reset(seed=123)
    s_b, _ = b.reset(seed=123)
    np.testing.assert_array_equal(s_a, s_b)  # same seed, same start (across instances)
    np.testing.assert_array_equal(a.reset(seed=123)[0], s_a)  # and again on the same instance
    s_c, _ = a.reset(seed=124)
    assert not np.array_equal(s_c, s_a)  # different seed, different start
    # unseeded resets keep drawing fresh starts
    assert not np.array_equal(a.reset()[0], a.reset()[0])


# ---------------------------------------------------------------- reward, goals, termination

# (action, position after it, reward = -distance to the NEAREST goal) starting in a corner.
WALK_FROM_NE = [
    ((-1, 0), (6, 7), -R(40)),  # g2: 6²+2²=40 (g0 would give 1²+7²=50; the old s=(7,7) gives 53)
    ((0, -1), (6, 6), -R(37)),  # g0: 1²+6²=37, g2: 6²+1²=37
    ((0, -1), (6, 5), -R(26)),  # g0: 1²+5²=26 (g2: 6)
    ((1, -1), (7, 4), -R(20)),  # g0: 2²+4²=20
    ((0, -1), (7, 3), -R(13)),
    ((0, -1), (7, 2), -R(8)),
    ((0, -1), (7, 1), -R(5)),
    ((0, -1), (7, 0), -2.0),
    ((0, -1), (7, -1), -R(5)),
    ((-0.5, 0), (6.5, -1), -R(3.25)),  # 1.5²+1² = 3.25: 1.80 from g0, outside the threshold
]
WALK_FROM_SW = [
    ((0, 1), (-7, -6), -R(40)),  # g1: 2²+6²=40 (g3: 7²+1²=50)
    ((1, 1), (-6, -5), -R(26)),  # g1: 1²+5²=26 (g3: 6)
    ((1, -1), (-5, -6), -R(26)),  # g3: 5²+1²=26 (g1: 6)
    ((1, 0), (-4, -6), -R(17)),  # g3: 4²+1²=17
]


@pytest.mark.parametrize("corner, walk_", [((1, 1), WALK_FROM_NE), ((-1, -1), WALK_FROM_SW)])
def test_reward_is_minus_distance_to_nearest_goal(corner, walk_):
    env = make()
    out = to_corner(env, *corner)
    check(out, (7 * corner[0], 7 * corner[1]), -R(53))  # 2²+7² to the two nearest goals
    for action, position, reward in walk_:
        check(step(env, action), position, reward)


def test_action_cost_term():
    env = make(action_cost=0.5)
    out = to_corner(env, 1, 1)
    check(out, (7, 7), -R(53) - 0.5 * 2.0)  # a = (1, 1): ‖a‖² = 2
    check(step(env, (-1, -0.5)), (6, 6.5), -R(38.25) - 0.5 * 1.25)  # g2: 6²+1.5²; ‖a‖²=1.25
    check(step(env, (0, 0)), (6, 6.5), -R(38.25))  # no action, no cost
    check(step(env, (0.5, 0)), (6.5, 6.5), -R(44.5) - 0.5 * 0.25)  # ‖a‖² not ‖a‖


def test_canonical_reward_is_minus_squared_distance_minus_30_action_cost_plus_10_at_a_goal():
    # MultiGoalCanonical-v0 (Haarnoja et al. 2017): r = -‖s' - g‖² - 30‖a‖² (+10 at a goal, threshold 1).
    env = make("MultiGoalCanonical-v0")
    out = to_corner(env, 1, 1)
    check(out, (7, 7), -53.0 - 30 * 2.0)  # 2²+7² = 53, ‖(1, 1)‖² = 2
    check(step(env, (-1, -0.5)), (6, 6.5), -38.25 - 30 * 1.25)  # g2: 6²+1.5²
    check(step(env, (0, 0)), (6, 6.5), -38.25)  # no action, no cost
    walk(env, [(1, -1), (0, -1), (0, -1), (0, -1), (0, -1), (0, -1)])  # to (7, 0.5)
    check(step(env, (-1, -0.5)), (6, 0), -1.0 - 30 * 1.25 + 10.0, terminated=True, goal_index=0)
    assert gym.spec("MultiGoalCanonical-v0").max_episode_steps == 30


def test_distance_form_is_an_argument_and_is_checked():
    env = make(distance="squared", action_cost=0.0, goal_reward=5.0)
    check(to_corner(env, -1, -1), (-7, -7), -53.0)
    with pytest.raises(ValueError, match="distance must be"):
        make(distance="cubic")


# Symmetries of the four-goal layout that send g0=(5,0) to g_i; they map the layout onto itself,
# so the same walk (transformed) reaches g_i with the same rewards.
SYMMETRIES = {
    0: lambda x, y: (x, y),
    1: lambda x, y: (-x, y),
    2: lambda x, y: (y, x),
    3: lambda x, y: (y, -x),
}


@pytest.mark.parametrize("goal_index", [0, 1, 2, 3])
def test_reaching_each_goal_on_the_threshold_boundary(goal_index):
    T = SYMMETRIES[goal_index]
    env = make()
    to_corner(env, *T(1, 1))
    out = walk(env, [T(0, -1)] * 7)
    check(out, T(7, 0), -2.0)  # two away from the goal: not reached
    # distance exactly goal_threshold = 1: "within", so reached
    check(step(env, T(-1, 0)), T(6, 0), -1.0 + 10.0, terminated=True, goal_index=goal_index)


@pytest.mark.parametrize("goal_index", [0, 1, 2, 3])
def test_just_outside_then_inside_the_threshold(goal_index):
    T = SYMMETRIES[goal_index]
    env = make()
    to_corner(env, *T(1, 1))
    walk(env, [T(0, -1)] * 7)  # at T(7, 0)
    d = 7.0 - 5.0 - np.float64(np.float32(0.99))  # 1.0099999...: just outside
    check(step(env, T(-0.99, 0)), T(5.0 + d, 0), -d)
    check(step(env, T(-0.5, 0)), T(4.5 + d, 0), -(d - 0.5) + 10.0, terminated=True,
          goal_index=goal_index)


def test_goal_reward_and_goal_threshold_are_parameters():
    env = make(goal_reward=3.0, goal_threshold=2.0)
    to_corner(env, 1, 1)
    check(walk(env, [(0, -1)] * 6), (7, 1), -R(5))  # 2.24 > 2
    check(step(env, (0, -1)), (7, 0), -2.0 + 3.0, terminated=True, goal_index=0)


@pytest.mark.parametrize("env_id", IDS)
def test_truncation_at_exactly_step_30(env_id):
    env = gym.make(env_id)
    assert env.spec.max_episode_steps == 30
    env.reset(seed=0)
    for t in range(1, 31):
        _, _, terminated, truncated, info = env.step(np.zeros(2, dtype=np.float32))
        assert terminated is False
        assert info["goal_index"] == -1
        assert truncated is (t == 30), f"step {t}: truncated={truncated}"


# ---------------------------------------------------------------- goal layouts


def test_two_goal_layout():
    # g0 = (-3.5,-3.5), g1 = (3.6,3.6): the south-west goal is 0.1·√2 closer to the start
    env = make("MultiGoalTwo-v0")
    check(to_corner(env, -1, 1), (-7, 7), -R(122.5))  # g0: 3.5²+10.5² = 122.5 (g1: 10.6²+3.4² = 123.92)
    check(walk(env, [(0, -1)] * 14), (-7, -7), -R(24.5))  # g0: 2·3.5²
    check(step(env, (1, 1)), (-6, -6), -R(12.5))
    check(step(env, (1, 1)), (-5, -5), -R(4.5))
    check(step(env, (1, 1)), (-4, -4), -R(0.5) + 10, terminated=True, goal_index=0)

    to_corner(env, -1, 1)
    check(walk(env, [(1, 0)] * 14), (7, 7), -R(23.12))  # g1: 2·3.4²
    check(step(env, (-1, -1)), (6, 6), -R(11.52))  # 2·2.4²
    check(step(env, (-1, -1)), (5, 5), -R(3.92))  # 2·1.4²: 1.98 away, not reached
    check(step(env, (-1, -1)), (4, 4), -R(0.32) + 10, terminated=True, goal_index=1)

    # no goal where the four-goal layout has one
    check(to_corner(env, 1, -1), (7, -7), -R(122.5))  # g0: 10.5²+3.5² (g1: 3.4²+10.6² = 123.92)
    check(walk(env, [(0, 1)] * 7), (7, 0), -R(24.52))  # g1: 3.4²+3.6²
    check(step(env, (-1, 0)), (6, 0), -R(18.72))  # g1: 2.4²+3.6²
    check(step(env, (-1, 0)), (5, 0), -R(14.92))  # g1: 1.4²+3.6²


CUSTOM_GOALS = [(3.0, 7.0), (-7.0, -7.0), (7.0, -3.0)]  # one on a wall, one in a corner


def test_custom_goal_layout():
    env = make(goals=CUSTOM_GOALS)
    # g2 = (7,-3)
    check(to_corner(env, 1, -1), (7, -7), -4.0)
    check(step(env, (0, 1)), (7, -6), -3.0)
    check(step(env, (0, 1)), (7, -5), -2.0)
    check(step(env, (0, 1)), (7, -4), -1.0 + 10, terminated=True, goal_index=2)
    # g1 = (-7,-7)
    check(to_corner(env, -1, 1), (-7, 7), -10.0)  # g0 at 10, g1 at 14
    check(walk(env, [(0, -1)] * 7), (-7, 0), -7.0)  # g1 at 7, g0 at √149
    check(walk(env, [(0, -1)] * 5), (-7, -5), -2.0)
    check(step(env, (0, -1)), (-7, -6), -1.0 + 10, terminated=True, goal_index=1)
    # g0 = (3,7)
    check(to_corner(env, 1, 1), (7, 7), -4.0)
    check(walk(env, [(-1, 0)] * 2), (5, 7), -2.0)
    check(step(env, (-1, 0)), (4, 7), -1.0 + 10, terminated=True, goal_index=0)


def test_single_custom_goal():
    env = make(goals=[(-2.0, 7.0)])
    check(to_corner(env, 1, 1), (7, 7), -9.0)
    check(walk(env, [(-1, 0)] * 7), (0, 7), -2.0)
    check(step(env, (-1, 0)), (-1, 7), -1.0 + 10, terminated=True, goal_index=0)


@pytest.mark.parametrize(
    "goals",
    [
        [(8.0, 0.0)],  # outside the box
        [(0.0, -7.5)],
        [(5.0, 0.0), (7.01, 7.0)],
        [],  # no goal
        [(1.0, 2.0, 3.0)],  # not (x, y)
        [1.0, 2.0],  # flat list, not a list of pairs
        [(5.0, 0.0), (0.0, 5.0, 1.0)],  # ragged
        [(float("inf"), 0.0)],
        [(float("nan"), 0.0)],  # NaN lies nowhere in the box; would poison every reward
    ],
    ids=["x>7", "y<-7", "second-out", "empty", "triple", "flat", "ragged", "inf", "nan"],
)
def test_bad_goals_raise_value_error(goals):
    with pytest.raises(ValueError):
        gym.make("MultiGoal-v0", goals=goals)


# ---------------------------------------------------------------- rendering


def pixel(image, x, y):
    """Pixel showing world point (x, y) in an image of the box [-7,7]², x right and y up (Fig. 1)."""
    h, w, _ = image.shape
    col = min(int((x + 7.0) / 14.0 * w), w - 1)
    row = min(int((7.0 - y) / 14.0 * h), h - 1)
    return image[row, col]


def is_red(rgb):
    r, g, b = (int(v) for v in rgb)
    return r >= 150 and g <= 120 and b <= 120


def render(env_id="MultiGoal-v0", seed=0, **kwargs):
    env = gym.make(env_id, render_mode="rgb_array", **kwargs)
    env.reset(seed=seed)
    image = env.render()
    assert isinstance(image, np.ndarray) and image.dtype == np.uint8
    assert image.ndim == 3 and image.shape[2] == 3 and min(image.shape[:2]) >= 50
    return env, image


NO_GOAL_POINTS = [(5, 5), (-5, 5), (5, -5), (-5, -5), (2.5, 2.5), (-2.5, -2.5), (6.5, -6.5), (0, 2.5)]


def test_render_draws_the_four_goals():
    _, image = render()
    for g in [(5, 0), (-5, 0), (0, 5), (0, -5)]:
        assert is_red(pixel(image, *g)), f"no red at goal {g}"
    for p in NO_GOAL_POINTS:
        assert not is_red(pixel(image, *p)), f"red at {p}, where there is no goal"


def test_render_draws_the_two_goal_layout_with_y_up():
    _, image = render("MultiGoalTwo-v0")
    for g in [(-3.5, -3.5), (3.6, 3.6)]:
        assert is_red(pixel(image, *g)), f"no red at goal {g}"
    # mirror images (would be red if y pointed down) and the four-goal positions: no goal there
    for p in [(-3.5, 3.5), (3.6, -3.6), (5, 0), (-5, 0), (0, 5), (0, -5)]:
        assert not is_red(pixel(image, *p)), f"red at {p}, where there is no goal"


def test_render_draws_the_goals_it_is_given():
    _, image = render(goals=[(5.0, 0.0)])
    assert is_red(pixel(image, 5, 0))
    for p in [(-5, 0), (0, 5), (0, -5)]:
        assert not is_red(pixel(image, *p)), f"red at {p}: a default goal drawn instead of the given ones"


def test_render_draws_the_point_where_it_is():
    env, image0 = render()
    walk(env, [(-1, 1)] * 8 + [(0, -1)] * 4 + [(1, 0)] * 4)  # to (-7, 7), (-7, 3), then (-3, 3)
    image1 = env.render()
    walk(env, [(1, 0)])  # to (-2, 3)
    image2 = env.render()
    assert image1.shape == image2.shape == image0.shape and image2.dtype == np.uint8
    # the point appears where it now is (nothing was drawn at (-2, 3) before) ...
    assert not np.array_equal(pixel(image2, -2, 3), pixel(image1, -2, 3)), "point not drawn"
    # ... and leaves where it was (a trail may stay, but the point must look different from it)
    assert not np.array_equal(pixel(image2, -3, 3), pixel(image1, -3, 3)), "point not drawn"
    assert not np.array_equal(pixel(image1, -3, 3), pixel(image0, -3, 3))
    assert not is_red(pixel(image2, -2, 3)) and not is_red(pixel(image1, -3, 3))


# ---------------------------------------------------------------- gymnasium's checker


@pytest.mark.parametrize("render_mode", [None, "rgb_array"])
@pytest.mark.parametrize("env_id", IDS)
def test_check_env_passes(env_id, render_mode):
    env = gym.make(env_id, render_mode=render_mode).unwrapped
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the checker's warnings count as failures too
        check_env(env)
