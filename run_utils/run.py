"""One training run's life: where it writes, its seeds, the context of the training loop (signals,
NaN guard, logging, checkpoints, the held-out measure) and, after the loop, what it leaves behind.

    run = Run(args, __file__)          # threads, seeds, device; --resume reads its checkpoint
    obs, start = run.start(agent, rb, envs, dims, total, z=z, z_rng=z_rng)
    with run.training():               # SIGINT/SIGTERM -> checkpoint; NaN -> stop
        for global_step in range(start, total, num_envs):
            ...                        # act, step, store, update
            run.log.episodes(infos, global_step, z)
            run.log_losses(info, global_step, update_step)
            run.step_done(global_step + num_envs, obs)   # progress, periodic checkpoint
    result = run.finish(agent, ...)    # --save-model, eval.json, --capture-video
"""

import contextlib
import dataclasses
import os
import shlex
import signal
import sys
import numpy as np
import torch

import evaluation
from run_utils import checkpoint, files, hardware, outputs
from run_utils.cli import FAILED, NAN, Interrupted, RunFailed, check_resume, script_name
from run_utils.log import TrainingLog
from run_utils.progress import Progress
from run_utils.seeding import Seeds

LOG_EVERY = 100  # updates between two loss logs (the only host syncs of the hot loop)


class Run:
    """One run of a script. Its checkpoint holds the training state and the loop variables given to `start`,
    so a resumed run computes bit for bit what an uninterrupted one does (CPU, same --threads)."""

    def __init__(self, args, file: str):
        self.args, self.script, self.script_path = args, script_name(file), os.path.abspath(file)
        torch.set_num_threads(args.threads)
        hardware.keep_freed_memory()
        if args.resume:
            args.resume = checkpoint.checkpoint_path(args.resume)
        self.dir = files.RunDirectory(args)  # with --resume, locked before its checkpoint is read
        self.device, self.device_note = hardware.choose_device(args)
        self.saved = None  # the checkpoint to continue, until `start` has restored it
        try:  # bad input lets go of the lock, so that a caller in this process may try again
            if args.resume:
                self.saved = checkpoint.read_checkpoint(args.resume, self.script)
                check_resume(args, self.saved["args"])
            saved_precision = self.saved and self.saved.get("precision", "float32")  # older files: float32
            self.precision = hardware.choose_precision(args, self.device, saved_precision)
        except BaseException:
            self.dir.release()
            raise
        self.checkpointed_step = None if self.saved is None else self.saved["global_step"]
        self.seeds = Seeds(args.seed, args.torch_deterministic)
        self.stop_signal = []
        self.defer_signals, self.exiting, self.handlers = True, False, {}
        self.nonfinite = torch.zeros((), dtype=torch.bool, device=self.device)  # set by a NaN loss, read when logging

    def autocast(self):
        """The context of the updates and of acting: bf16 autocast in a bf16 run (`hardware.autocast`)."""
        return hardware.autocast(self.device, self.precision)

    def compiled(self, function, key):
        """`function` as this run computes it: with --compile through `torch.compile` (`hardware.torch_compile`),
        then on CUDA with --cuda-graphs as CUDA graphs, one per `key(*args)` (`hardware.CudaGraphs`); with
        neither `function` itself, the reference."""
        if self.args.compile:
            function = hardware.torch_compile(function)
        if self.device.type == "cuda" and self.args.cuda_graphs:
            function = hardware.CudaGraphs(function, key)
        return function

    def command(self, *flags: str) -> str:
        """A command line that runs this script again, as it ran: this interpreter, this file."""
        return shlex.join([sys.executable, self.script_path, *flags])

    # ------------------------------------------------------------------ before the loop
    def start(self, agent, buffer, envs, dims: dict, total_steps: int, **loop_state):
        """Seed and reset the envs, create the run directory and the TensorBoard writer; on --resume,
        restore the agent, the buffer, the RNGs, the envs and the `loop_state` objects in place.
        Returns (obs, the first step). Exits early, saying so, when a resumed run has nothing to do."""
        try:
            return self.resume_or_begin(agent, buffer, envs, dims, total_steps, loop_state)
        except BaseException:  # bad input or a run with nothing to do: let go of the directory
            self.dir.release()
            raise

    def resume_or_begin(self, agent, buffer, envs, dims: dict, total_steps: int, loop_state: dict):
        args, state = self.args, self.saved
        envs.action_space.seed(self.seeds.int_seed("warm_up"))
        obs, _ = envs.reset(seed=self.seeds.int_seed("envs"))  # sub-env i gets this seed + i
        self.agent, self.buffer, self.envs, self.dims, self.loop_state = agent, buffer, envs, dims, loop_state
        self.total_steps, start_step = total_steps, 0 if state is None else state["global_step"]
        agent.precision = self.precision
        if args.total_timesteps <= args.learning_starts:
            print(f"warning: --total-timesteps {args.total_timesteps} <= --learning-starts {args.learning_starts}: "
                  "this run only takes random actions and never learns", file=sys.stderr)
        if state is not None:
            outputs.stop_if_nothing_to_do(self, state, total_steps)
            obs = checkpoint.loaded(lambda: checkpoint.restore_training_state(state, agent, buffer, envs, loop_state,
                                                                              self.device), args.resume, self.script)
            self.saved = None  # read into memory, not mapped: the file's space is free once it is replaced
        else:
            self.dir.make()
        num_z = getattr(args, "num_z", 1)
        print(f"{self.script}.py: {self.dir.path} | {args.env_id}, {f'|Z| = {num_z}' if num_z > 1 else 'one policy'}, "
              f"{total_steps} steps" + (f", resuming at step {start_step}" if state is not None else "") +
              f" | {self.device_note}, {self.precision} | the duration is printed after 30 s of learning", flush=True)
        self.log = TrainingLog(args, self.dir.path, self.dir.name, self.precision,
                               resumed_at=start_step if state is not None else None)
        if state is not None:
            self.log.recent_returns.extend(state["recent_returns"])
        self.progress = Progress(total_steps, start_step, args.learning_starts)
        self.obs = obs
        # From here until eval.json is written, SIGINT/SIGTERM end the run with a checkpoint.
        self.handlers = {sig: signal.signal(sig, self.on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        return obs, start_step

    # ---------------------------------------------------------------- inside the loop
    def log_losses(self, info: dict, step: int, update_step: int, charts=()) -> None:
        """Watch the critic loss for NaN at every update (no host sync); every LOG_EVERY updates
        stop on a NaN, and write the losses (tags in `charts` under charts/, others under losses/)."""
        self.nonfinite |= ~torch.isfinite(info["qf_loss"])
        if update_step % LOG_EVERY == 0:
            self.check_finite(step)
            self.log.losses(info, step, charts, self.progress.sps())

    def measure(self, step: int, act, make_envs, num_z: int, *, disc_sa, disc_s) -> None:
        """Every --measure-every steps, the held-out discriminability and the probe
        (`evaluation.held_out_measure`) of the |Z| = `num_z` policies, seeded from (seed, step)."""
        every, num_envs = self.args.measure_every, self.envs.num_envs
        if every and step > 0 and step % every < num_envs:
            measured = evaluation.held_out_measure(
                hardware.in_precision(act, self.device, self.precision), make_envs, self.args.env_id, num_z, self.args.measure_steps,
                evaluation.seed_from(self.args.seed, step), self.device, disc_sa=disc_sa, disc_s=disc_s)
            self.log.scalars(measured, step)

    def step_done(self, next_step: int, obs: np.ndarray) -> None:
        """After every step: progress, the periodic checkpoint, and a stop if a signal came."""
        num_envs, self.obs = len(obs), obs
        recent = self.log.recent_returns
        self.progress.update(next_step, recent[-1] if recent else None)
        every = self.args.checkpoint_every
        if every and (next_step % every < num_envs or next_step == self.total_steps):
            self.save_checkpoint(next_step, obs)
        if self.stop_signal:
            self.stopped_at = next_step
            raise Interrupted()

    def check_finite(self, step: int) -> None:
        if self.nonfinite.item() or not checkpoint.all_finite(checkpoint.live_state(self.agent.modules())):
            raise FloatingPointError(f"a loss or a parameter became NaN or infinite by step {step}")

    def save_checkpoint(self, next_step: int, obs: np.ndarray) -> None:
        """The whole training state at `next_step`, replacing the last checkpoint atomically. A write
        that fails (a full disk) leaves the last checkpoint as it was and stops the run."""
        self.check_finite(next_step)
        state = {"script": self.script, "script_path": self.script_path, "args": dataclasses.asdict(self.args),
                 "precision": self.precision, "dims": self.dims, "global_step": next_step, "obs": obs,
                 "recent_returns": list(self.log.recent_returns),
                 **checkpoint.training_state(self.agent, self.buffer, self.envs, self.loop_state, self.device)}
        lost = [i for i, env in enumerate(state["envs"]) if env is None]
        if lost and not getattr(self, "said_lost", False):
            self.said_lost = True
            print(f"warning: the state of env(s) {lost} cannot be saved (copying or pickling it fails, e.g. an "
                  "attribute that is a lambda): checkpoints skip it, and a resume starts it on a new episode",
                  file=sys.stderr)
        checkpoint.write(state, self.dir.checkpoint_file, self.checkpointed_step, self.command("--resume", self.dir.path))
        self.checkpointed_step = next_step

    # ---------------------------------------------------------------- signals and exits
    def on_signal(self, signum: int, frame) -> None:
        """SIGINT/SIGTERM. During training the current step is finished first (`step_done` and the
        end of `training` stop); in `finish` (the model file, the videos, the evaluation) at once:
        the resume redoes what was left."""
        self.stop_signal.append(signum)
        if not self.defer_signals and not self.exiting:
            raise Interrupted()

    @contextlib.contextmanager
    def stops(self):
        """Ends the process as the exit codes say, for what is raised inside: a signal writes the
        checkpoint (unless it already holds this step) and prints the resume command (exit code
        128 + the signal); a NaN stops the run with the last good checkpoint kept (3); a failure
        such as a full disk says so (1)."""
        try:
            yield
        except Interrupted:
            self.exiting = True  # a second Ctrl-C no longer interrupts the checkpoint write
            step = getattr(self, "stopped_at", self.total_steps)
            with self.stops():
                if self.checkpointed_step != step:
                    self.save_checkpoint(step, self.obs)
            self.close()
            print(f"interrupted at step {step}; checkpoint saved. Resume with: "
                  f"{self.command('--resume', self.dir.path)}", file=sys.stderr)
            sys.exit(128 + self.stop_signal[0])
        except FloatingPointError as error:
            self.close()
            kept = (f"the last good checkpoint {self.dir.checkpoint_file} (step {self.checkpointed_step}) is intact"
                    if self.checkpointed_step is not None else "no checkpoint had been written yet")
            print(f"{self.script}.py: error: {error}; training stopped, no model or evaluation written, and {kept}. "
                  "Try a lower learning rate or another seed.", file=sys.stderr)
            sys.exit(NAN)
        except RunFailed as error:
            self.close()
            print(f"{self.script}.py: error: {error}", file=sys.stderr)
            sys.exit(FAILED)

    def close(self) -> None:
        """The progress line, the TensorBoard writer, the signal handlers as they were before the
        run, and the run directory's lock."""
        self.progress.close()
        self.log.close()
        for sig, handler in self.handlers.items():
            signal.signal(sig, handler)
        self.dir.release()

    @contextlib.contextmanager
    def training(self):
        """The training loop runs inside. A signal finishes the current step, writes a checkpoint and
        exits with the resume command; a NaN stops the run before any model or evaluation is
        written, keeping the last good checkpoint; at the end, one last NaN check."""
        with self.stops():
            yield
            self.check_finite(self.total_steps)  # the updates since the last check
            if self.stop_signal:  # arrived after the last step, during the final measure
                raise Interrupted()
        self.progress.close()

    # ------------------------------------------------------------------ after the loop
    def finish(self, agent, saved_networks, act, make_envs, algorithm: str, num_z: int, **extra) -> dict | None:
        """After training: `--save-model`, `--capture-video` and the evaluation (eval.json, written
        last: it marks the run as done; returned), with the deterministic policy
        `act(obs [N, obs_dim], z [N]) -> actions [N, act_dim]`. A signal meanwhile stops at once; the
        resume redoes only these."""
        act, result = hardware.in_precision(act, self.device, self.precision), None
        with self.stops():
            self.defer_signals = False
            if self.stop_signal:  # arrived between the end of training and here
                raise Interrupted()
            if self.args.save_model:
                outputs.save_model(self, agent, saved_networks, algorithm)
            if self.args.capture_video:
                outputs.record_videos(self, act, num_z)
            if self.args.eval_episodes > 0:
                per_z = evaluation.evaluate(act, make_envs, self.args.env_id, num_z, self.args.eval_episodes,
                                            self.args.seed + evaluation.EVAL_SEED_OFFSET, self.device)
                result = outputs.write_evaluation(self, algorithm, per_z, **extra)
        self.close()
        return result
