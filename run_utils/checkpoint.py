"""What a checkpoint holds, and how it and a model file load on any device.

A checkpoint is the whole training state: the agent (networks, optimizers, log α), the replay
buffer, every random generator, each environment's simulator state and the loop's own variables,
so that a resumed run computes bit for bit what an uninterrupted one computes (on the CPU, with
the same --threads). Every tensor in a file is on the CPU: a file written on CUDA loads on a
machine without a GPU, and the other way round.
"""

import copy
import glob
import os
import pickle
import random
import sys

import gymnasium as gym
import numpy as np
import torch

from run_utils import files
from run_utils.cli import RunFailed, UsageError, args_from


def env_dims(envs) -> dict:
    """The sizes and action bounds an agent is built from (saved with the model)."""
    space, action_space = envs.single_observation_space, envs.single_action_space
    return {"obs_dim": space.shape[0], "act_dim": action_space.shape[0], "action_low": action_space.low,
            "action_high": action_space.high}


def checkpoint_path(path: str) -> str:
    """A run directory stands for its checkpoint.pt; anything else must be a checkpoint file."""
    if os.path.isdir(path):
        inside = os.path.join(path, "checkpoint.pt")
        if not os.path.exists(inside):
            if not glob.glob(os.path.join(path, "events.out.tfevents.*")):
                raise UsageError(f"{path} is not a run directory (a run directory holds TensorBoard events and "
                                 "checkpoint.pt): give the directory of one run")
            raise UsageError(f"{path} holds no checkpoint.pt: the run wrote none (it ran with --checkpoint-every 0 "
                             "and was not interrupted), so it cannot be resumed")
        return inside
    if path.endswith(".json"):
        raise UsageError(f"{path} is an evaluation file, not a checkpoint: resume with the run's directory "
                         "or its checkpoint.pt")
    return path


def read_checkpoint(path: str, script: str, mmap: bool = False) -> dict:
    """Load a checkpoint or model file written by `script`; one clear error otherwise. mmap=True
    reads lazily, for a look at its arguments: tensors loaded so stay backed by the file."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False, mmap=mmap)
    except FileNotFoundError:
        raise UsageError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory, not a checkpoint file") from None
    except Exception as error:  # a truncated or foreign file
        raise UsageError(f"{path} is not a readable checkpoint ({type(error).__name__}: {error})") from None
    if not isinstance(state, dict) or "script" not in state:
        raise UsageError(f"{path} was not written by one of this project's scripts")
    if state["script"] != script:
        raise UsageError(f"{path} was written by {state['script']}.py, not {script}.py")
    return state


def load_model(path: str, script: str, args_class, agent_class, names, device="cpu"):
    """Rebuild an agent from a `--save-model` file (or a checkpoint) of `script`, with the saved
    weights of the networks `names`, in eval mode. Returns (agent, args)."""
    state = read_checkpoint(path, script)
    args = args_from(args_class, state["args"], path, script)
    agent = agent_class(**state["dims"], args=args, device=torch.device(device))
    loaded(lambda: [getattr(agent, name).load_state_dict(state["agent"][name]) for name in names], path, script)
    for name in names:
        getattr(agent, name).eval()
    agent.precision = state.get("precision", "float32")  # `agent.policy` acts as training did
    return agent, args


def loaded(load, path: str, script: str):
    """`load()` (it loads state dicts), or one line where the file holds networks this version of the
    script cannot load: the discriminators were renamed on 2026-12-02 (disc_sa, disc_s) and SAC's actor
    became the ensemble layer on 2026-12-04."""
    try:
        return load()
    except (KeyError, RuntimeError) as error:
        reason = str(error).strip().splitlines()[0]
        raise UsageError(f"{path} holds networks that this version of {script}.py cannot load ({reason}); it was "
                         "written by an older version: load it with the code of its date (git log)") from None


def find_time_limit(env: gym.Env):
    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.wrappers.TimeLimit):
            return env
        env = env.env
    return None


def env_states(envs) -> list:
    """What is needed to continue every sub-env's episode exactly where it is: the simulator
    state (a copy of MuJoCo's whole MjData, or of a pure-Python env's attributes), its random
    generator and the time-limit counter. None where it cannot be captured or does not pickle (an
    attribute that is a lambda, say): a resume starts that env on a new episode."""
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
                pickle.dumps(state["attributes"])  # what torch.save will do with it
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


def rng_states(device: torch.device) -> dict:
    """Python's, numpy's and torch's random states, and the CUDA state of the run's own GPU only."""
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def restore_rng_states(states: dict, device: torch.device) -> None:
    """Inverse of `rng_states`. A CUDA state is restored to the run's GPU, and skipped with a note
    when the run now has none (a CUDA run resumed on a CPU)."""
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" not in states:
        return
    if device.type != "cuda":
        print("note: the checkpoint's CUDA random state is skipped: this run is on the CPU, so its random numbers "
              "from here on differ from those of an uninterrupted CUDA run", file=sys.stderr)
        return
    torch.cuda.set_rng_state(states["cuda"], device)


def all_finite(state) -> bool:
    """Every floating-point tensor in a (nested) state dict is finite."""
    if isinstance(state, torch.Tensor):
        return not state.is_floating_point() or bool(torch.isfinite(state).all())
    if isinstance(state, dict):
        return all(all_finite(value) for value in state.values())
    if isinstance(state, (list, tuple)):
        return all(all_finite(value) for value in state)
    return True


def live_state(modules: dict) -> dict:
    """The state of an agent (its `modules()`: networks, optimizers, tensors such as log α), where it lives."""
    return {name: m.detach() if isinstance(m, torch.Tensor) else m.state_dict() for name, m in modules.items()}


def state_of(modules: dict) -> dict:
    """The agent's state copied to the CPU, as files hold it: they load on any machine, GPU or not."""
    return on_cpu(live_state(modules))


def on_cpu(state):
    """A (nested) state with every tensor copied to the CPU."""
    if isinstance(state, torch.Tensor):
        return state.cpu()
    if isinstance(state, dict):
        return {key: on_cpu(value) for key, value in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(on_cpu(value) for value in state)
    return state


def load_state(modules: dict, state: dict) -> None:
    """`state_of`'s inverse, in place. An optimizer keeps how this process runs it (`capturable` on CUDA,
    for CUDA graphs; `fused`): a checkpoint written on another device must not bring its own."""
    for name, module in modules.items():
        if isinstance(module, torch.Tensor):
            with torch.no_grad():
                module.copy_(state[name])
        elif isinstance(module, torch.optim.Optimizer):
            how = [{key: group[key] for key in ("capturable", "fused", "foreach")} for group in module.param_groups]
            module.load_state_dict(state[name])
            for group, own in zip(module.param_groups, how):
                group.update(own)
        else:
            module.load_state_dict(state[name])


# --------------------------------------------------------------------- the training state
def training_state(agent, buffer, envs, loop_state: dict, device: torch.device) -> dict:
    """Everything that changes as a run trains, on the CPU: the agent's `modules()`, the replay
    buffer, every random state, each env's simulator state and episode statistics, and the loop's
    own variables `loop_state` (numpy arrays and generators, such as the z of each env)."""
    loop = {name: value.bit_generator.state if isinstance(value, np.random.Generator) else value.copy()
            for name, value in loop_state.items()}
    return {"agent": state_of(agent.modules()), "buffer": buffer.state_dict(), "rng": rng_states(device),
            "action_space_rng": envs.action_space.np_random.bit_generator.state, "envs": env_states(envs),
            "episode_returns": envs.episode_returns.copy(), "episode_lengths": envs.episode_lengths.copy(), **loop}


def restore_training_state(state: dict, agent, buffer, envs, loop_state: dict, device: torch.device):
    """Inverse of `training_state`, in place; returns the observation to continue from. An env whose
    state was not saved starts a new episode (its cut episode is not logged)."""
    load_state(agent.modules(), state["agent"])
    buffer.load_state_dict(state["buffer"])
    restore_rng_states(state["rng"], device)
    for name, value in loop_state.items():
        if isinstance(value, np.random.Generator):
            value.bit_generator.state = state[name]
        else:
            value[...] = state[name]
    envs.action_space.np_random.bit_generator.state = state["action_space_rng"]
    lost = restore_env_states(envs, state["envs"])
    obs = state["obs"]
    if lost:
        print(f"note: environment state of env(s) {lost} could not be saved; they start a new episode")
        obs[lost] = np.stack([envs.unwrapped.envs[i].reset()[0] for i in lost])
    envs.episode_returns[:] = state["episode_returns"]
    envs.episode_lengths[:] = state["episode_lengths"]
    envs.episode_returns[lost], envs.episode_lengths[lost] = 0, 0
    return obs


def write(state: dict, path: str, last_step: int | None, resume_command: str) -> None:
    """`state` to `path`, replacing the last checkpoint atomically. A write that fails (a full disk)
    leaves the last checkpoint (of `last_step`) as it was and stops the run in one line."""
    try:
        files.atomic_save(state, path)
    except (OSError, RuntimeError) as error:  # torch.save reports a failed write as a RuntimeError
        cause = error if isinstance(error, OSError) else error.__cause__ or error.__context__
        if not isinstance(cause, OSError):
            raise
        kept = (f"the last checkpoint (step {last_step}) is intact" if last_step is not None
                else "no checkpoint had been written yet")
        raise RunFailed(f"cannot write the checkpoint at step {state['global_step']} ({cause.strerror or cause}); "
                        f"{kept}. Free some space, then resume with: {resume_command}") from None
