"""Multigoal: a point in the plane that must reach one of several goals (MEDE paper §5.1).

After Haarnoja et al. (2017). Importing this module registers three ids with gymnasium:

- ``MultiGoal-v0``: four equal goals at (5, 0), (-5, 0), (0, 5), (0, -5)   (Fig. 1 a, b)
- ``MultiGoalTwo-v0``: (-3.5, -3.5) and (3.6, 3.6); the south-west goal is slightly closer to
  the start and so slightly more valuable (the best straight-line return is about 0.4 higher:
  at α = 0.3, SAC's stochastic policy still reaches the north-east goal; README)  (Fig. 1 c, d)

Definition:

- observation: the position s, in Box([-7, -7], [7, 7]);
- action: a velocity a, in Box([-1, -1], [1, 1]) (an action outside it is clipped to it);
- step: s' = clip(s + a, -7, 7); start: s_0 ~ N(0, 0.1²) per coordinate;
- reward: -‖s' - nearest goal‖₂ (distance="linear", the default) or -‖s' - nearest goal‖₂²
  (distance="squared"), minus action_cost·‖a‖², plus goal_reward when s' is within
  goal_threshold of a goal, which also terminates the episode;
- 30 steps per episode (truncation, set at registration);
- info["goal_index"]: index of the goal reached at this step, -1 if none; `goal_names` names the
  goals by their compass direction from the start (MultiGoal-v0: E, W, N, S).

The canonical form of the maximum-entropy literature (Haarnoja et al. 2017 and their reference
code) is distance="squared", action_cost=30, goal_reward=10, registered as
``MultiGoalCanonical-v0`` (four goals).
"""

import gymnasium as gym
import numpy as np
from gymnasium import spaces

FOUR_GOALS = ((5.0, 0.0), (-5.0, 0.0), (0.0, 5.0), (0.0, -5.0))
TWO_GOALS = ((-3.5, -3.5), (3.6, 3.6))
BOUND = 7.0
START_STD = 0.1
MAX_EPISODE_STEPS = 30


def compass(x: float, y: float) -> str:
    """The 8-point compass direction of (x, y) from the origin: E, NE, N, NW, W, SW, S, SE."""
    return ["E", "NE", "N", "NW", "W", "SW", "S", "SE"][round(np.degrees(np.arctan2(y, x)) / 45) % 8]


class MultiGoalEnv(gym.Env):
    """A 2-D point mass; `goals` is a sequence of (x, y) goal positions inside the box."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        goals=FOUR_GOALS,
        goal_reward: float = 10.0,
        goal_threshold: float = 1.0,
        action_cost: float = 0.0,
        distance: str = "linear",
        render_mode: str | None = None,
    ):
        self.goals = np.asarray(goals, dtype=np.float64)
        if self.goals.ndim != 2 or self.goals.shape[1] != 2 or len(self.goals) == 0:
            raise ValueError(f"goals must be a non-empty list of (x, y) pairs, got {goals!r}")
        if not np.all(np.abs(self.goals) <= BOUND):  # also rejects NaN and inf
            raise ValueError(f"every goal must lie inside [-{BOUND}, {BOUND}]², got {goals!r}")
        names = [compass(x, y) for x, y in self.goals]  # two goals in one direction: add their index
        self.goal_names = [name if names.count(name) == 1 else f"{name}{i}" for i, name in enumerate(names)]
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}")
        if distance not in ("linear", "squared"):
            raise ValueError(f"distance must be 'linear' or 'squared', got {distance!r}")
        self.distance = distance
        self.goal_reward = goal_reward
        self.goal_threshold = goal_threshold
        self.action_cost = action_cost
        self.render_mode = render_mode
        self.observation_space = spaces.Box(-BOUND, BOUND, shape=(2,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.position = np.zeros(2)
        self.path = []  # positions of the current episode, for rendering

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.position = np.clip(self.np_random.normal(0.0, START_STD, size=2), -BOUND, BOUND)
        self.path = [self.position.copy()]
        return self.position.astype(np.float32), {"goal_index": -1}

    def step(self, action):
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        self.position = np.clip(self.position + action, -BOUND, BOUND)
        self.path.append(self.position.copy())
        distances = np.linalg.norm(self.goals - self.position, axis=1)
        nearest = int(np.argmin(distances))
        distance_cost = distances[nearest] if self.distance == "linear" else distances[nearest] ** 2
        reward = -distance_cost - self.action_cost * float(action @ action)
        reached = bool(distances[nearest] <= self.goal_threshold)
        if reached:
            reward += self.goal_reward
        info = {"goal_index": nearest if reached else -1}
        return self.position.astype(np.float32), float(reward), reached, False, info

    def render(self, size: int = 400):
        """An RGB image of the box, the goals (red, threshold radius), this episode's path and the point."""
        if self.render_mode != "rgb_array":
            return None
        image = np.full((size, size, 3), 255, dtype=np.uint8)
        scale = size / (2 * BOUND)
        rows, cols = np.mgrid[0:size, 0:size]
        x, y = (cols + 0.5) / scale - BOUND, BOUND - (rows + 0.5) / scale  # pixel centres in world units
        image[(np.abs(x) < 0.5 / scale) | (np.abs(y) < 0.5 / scale)] = (200, 200, 200)  # axes
        for gx, gy in self.goals:
            image[(x - gx) ** 2 + (y - gy) ** 2 <= self.goal_threshold**2] = (230, 60, 60)
        for px, py in self.path:
            image[(x - px) ** 2 + (y - py) ** 2 <= 0.05**2 + 1.0 / scale**2] = (120, 120, 220)
        px, py = self.position
        image[(x - px) ** 2 + (y - py) ** 2 <= 0.2**2] = (30, 30, 160)
        return image


gym.register("MultiGoal-v0", entry_point=MultiGoalEnv, max_episode_steps=MAX_EPISODE_STEPS,
             kwargs={"goals": FOUR_GOALS})
gym.register("MultiGoalTwo-v0", entry_point=MultiGoalEnv, max_episode_steps=MAX_EPISODE_STEPS,
             kwargs={"goals": TWO_GOALS})
gym.register("MultiGoalCanonical-v0", entry_point=MultiGoalEnv, max_episode_steps=MAX_EPISODE_STEPS,
             kwargs={"goals": FOUR_GOALS, "distance": "squared", "action_cost": 30.0, "goal_reward": 10.0})
