"""Multidirection Ant ("M. Ant", MEDE paper §5.2): Ant rewarded for speed in ANY direction.

Importing this module registers ``MultiDirectionAnt-v0``: gymnasium's ``Ant-v4`` (same
model, observation without the xy position, healthy termination, 1000-step limit), except
that the forward reward ẋ is replaced by the planar speed ‖(ẋ, ẏ)‖₂. The healthy reward
and the control (and optional contact) costs are unchanged, so

    reward = ‖(ẋ, ẏ)‖₂ + healthy_reward - ctrl_cost [- contact_cost].

info["reward_forward"] and info["forward_reward"] hold the planar speed;
info["x_velocity"] and info["y_velocity"] are gymnasium's own. The torso position
info["x_position"], info["y_position"] is in the info of every step and, unlike Ant-v4, also
of `reset`, so that an episode's displacement (and heading) is the last minus the first.
"""

import gymnasium as gym
import numpy as np
from gymnasium.envs.mujoco.ant_v4 import AntEnv


class MultiDirectionAntEnv(AntEnv):
    def step(self, action):
        observation, reward, terminated, truncated, info = super().step(action)
        planar_speed = float(np.hypot(info["x_velocity"], info["y_velocity"]))
        reward = reward - info["forward_reward"] + planar_speed
        info["reward_forward"] = info["forward_reward"] = planar_speed
        return observation, reward, terminated, truncated, info

    def _get_reset_info(self):
        x, y = self.get_body_com("torso")[:2]
        return {"x_position": float(x), "y_position": float(y)}


gym.register("MultiDirectionAnt-v0", entry_point=MultiDirectionAntEnv, max_episode_steps=1000)
