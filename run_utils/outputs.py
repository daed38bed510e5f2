"""What a run leaves behind when it has trained: the model file (--save-model), eval.json and the
table on stdout, and the evaluation GIFs (--capture-video). Each file is always the latest; an
earlier one (a run extended with --resume) keeps its step in its name."""

import dataclasses
import os

import torch

import evaluation
from run_utils import checkpoint, files
from run_utils.cli import UsageError


def model_path(run) -> str:
    return run.dir.file(f"{run.args.exp_name}.pt")


def saved_step(path: str):
    """The step a model file was written at."""
    return torch.load(path, map_location="cpu", weights_only=False, mmap=True).get("global_step", "unknown")


def finished_at(run, step: int) -> bool:
    """Whether `Run.finish` has done its work for `step`: eval.json, the model file and the videos,
    as far as the run's flags ask for them."""
    args, eval_path = run.args, run.dir.file("eval.json")
    return ((args.eval_episodes == 0 or os.path.exists(eval_path) and files.evaluated_step(eval_path) == step) and
            (not args.save_model or os.path.exists(model_path(run)) and saved_step(model_path(run)) == step) and
            (not args.capture_video or os.path.exists(run.dir.file(os.path.join("videos", f"step{step}_z0.gif")))))


def stop_if_nothing_to_do(run, state: dict, total_steps: int) -> None:
    """A resumed run whose checkpoint (`state`) is past --total-timesteps is bad input; one that has
    already finished everything its flags ask for says so and exits (code 0), writing nothing."""
    start_step, args = state["global_step"], run.args
    if total_steps < start_step:
        raise UsageError(f"--total-timesteps {args.total_timesteps} is below the step this run has reached "
                         f"({start_step}); to train it longer, give more")
    changed = {name for name, value in dataclasses.asdict(args).items()
               if name != "resume" and state["args"].get(name, value) != value}
    if start_step >= total_steps and finished_at(run, start_step) and "eval_episodes" not in changed:
        longer = run.command("--resume", run.dir.path, "--total-timesteps", str(2 * total_steps))
        print(f"{run.dir.name} already finished at step {start_step}; its results are in {run.dir.path}. "
              f"To train it longer: {longer}")
        raise SystemExit(0)


def save_model(run, agent, names, algorithm: str) -> None:
    """`--save-model`: the weights of the agent's networks `names` (on the CPU: the file loads
    anywhere) and the arguments, for `load_model`."""
    path = model_path(run)
    files.keep_earlier(path, run.total_steps, saved_step)
    weights = checkpoint.state_of({name: getattr(agent, name) for name in names})
    files.atomic_save({"script": run.script, "script_path": run.script_path, "algorithm": algorithm,
                       "args": dataclasses.asdict(run.args), "precision": run.precision, "dims": run.dims,
                       "global_step": run.total_steps, "agent": weights}, path)
    print(f"model saved to {path}")


def write_evaluation(run, algorithm: str, per_z: list[dict], **extra) -> dict:
    """eval.json, the table on stdout, and the eval/ tags."""
    result = {"algorithm": algorithm, "script": run.script, "exp_name": run.args.exp_name, **extra,
              "env_id": run.args.env_id, "seed": run.args.seed, "global_step": run.total_steps,
              **evaluation.summarize(per_z), "per_z": per_z, "precision": run.precision,
              "config": dataclasses.asdict(run.args)}
    eval_path = run.dir.file("eval.json")
    files.keep_earlier(eval_path, run.total_steps, files.evaluated_step)
    files.atomic_write_json(result, eval_path)
    evaluation.print_table(result)
    print(f"-> {eval_path}")
    if len(per_z) == 1:
        run.log.writer.add_scalar("eval/return", result["avg"], run.total_steps)
    else:
        run.log.writer.add_scalar("eval/avg_return", result["avg"], run.total_steps)
        run.log.writer.add_scalar("eval/max_return", result["max"], run.total_steps)
    return result


def record_videos(run, act, num_z: int) -> None:
    """`--capture-video`: one deterministic episode of every z as a GIF, `act` as in `evaluate`,
    in videos/step{N}_z{k}.gif (the step, so that an extended run keeps the earlier ones)."""
    directory = run.dir.file("videos")
    os.makedirs(directory, exist_ok=True)
    paths = [os.path.join(directory, f"step{run.total_steps}_z{k}.gif") for k in range(num_z)]
    seeds = [run.args.seed + evaluation.EVAL_SEED_OFFSET + k * max(run.args.eval_episodes, 1) for k in range(num_z)]
    evaluation.record_videos(act, run.args.env_id, seeds, paths, run.device)
    print(f"videos saved to {directory}")
