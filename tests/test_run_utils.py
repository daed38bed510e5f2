"""The run infrastructure (the run_utils package), tested once, through the three scripts where it is
their wiring that matters: exact resume, SIGTERM/SIGINT and the printed resume command, NaN,
checkpoints of another run rejected, checkpoint size, a copied script, resume of a run
directory or of a finished run, warnings, progress, and the evaluation's M. Ant directions."""

import json
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

import diayn_continuous as diayn
import evaluation
import mede_continuous as mede
from run_utils import cli, files, hardware
from run_utils.buffer import ReplayBuffer
from run_utils import progress as progress_module
from run_utils.run import Run
import sac_continuous as sac

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = {"sac": sac, "mede": mede, "diayn": diayn}
SMALL = {"sac": dict(hidden_dim=16), "mede": dict(hidden_dim=16, disc_hidden_dim=16, num_z=3),
         "diayn": dict(hidden_dim=16, disc_hidden_dim=16, num_z=3)}


def make_args(name, **kwargs):
    defaults = dict(env_id="MultiGoal-v0", learning_starts=100, total_timesteps=400, eval_episodes=1,
                    checkpoint_every=0, cuda=False, **SMALL[name])
    return SCRIPTS[name].Args(**{**defaults, **kwargs})


def only_run(root):
    (run_dir,) = (root / "runs").iterdir()
    return run_dir


def losses(run_dir, tag="losses/qf_loss"):
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0}).Reload()
    return {e.step: e.value for e in events.Scalars(tag)}


@pytest.mark.parametrize("name, env_id, extra", [
    ("sac", "MultiGoal-v0", {}), ("sac", "Hopper-v4", {}), ("sac", "MultiDirectionAnt-v0", {}), ("mede", "MultiGoal-v0", {}),
    ("mede", "Hopper-v4", {"separate_networks": True, "num_z": 2}), ("diayn", "MultiGoal-v0", {}),
    ("diayn", "Hopper-v4", {"measure_every": 200, "measure_steps": 50}),  # the held-out measure leaves no trace
])
def test_a_resumed_run_computes_exactly_what_an_uninterrupted_run_computes(tmp_path, monkeypatch, name, env_id, extra):
    module = SCRIPTS[name]
    uninterrupted, interrupted = tmp_path / "uninterrupted", tmp_path / "interrupted"
    for d in (uninterrupted, interrupted):
        d.mkdir()
    # 700 steps in one go (checkpoints on the way, as a long run would have) ...
    monkeypatch.chdir(uninterrupted)
    full = module.main(make_args(name, env_id=env_id, total_timesteps=700, checkpoint_every=300, **extra))
    # ... against 300 steps, then a resume from the checkpoint up to 700. Hopper and Ant episodes are
    # long, so step 300 is in the middle of an episode: the MuJoCo state must be restored exactly
    # (Ant's reward also reads the torso position, derived from the state).
    monkeypatch.chdir(interrupted)
    module.main(make_args(name, env_id=env_id, total_timesteps=300, checkpoint_every=300, **extra))
    run_dir = only_run(interrupted)
    checkpoint = str(run_dir / "checkpoint.pt")
    assert torch.load(checkpoint, weights_only=False)["global_step"] == 300
    resumed = module.main(cli.parse_args(module.Args, module.__file__, ["--resume", checkpoint, "--total-timesteps", "700"]))
    assert only_run(interrupted) == run_dir, "a resumed run keeps its directory"

    expected, got = losses(only_run(uninterrupted)), losses(run_dir)
    after = [step for step in expected if step > 300]
    assert len(after) >= 2
    for step in after:  # on the CPU, the same numbers bit for bit
        assert got[step] == expected[step], f"step {step}"
    assert resumed["per_z"] == full["per_z"]
    episodes = losses(run_dir, "charts/episodic_return")
    assert episodes == losses(only_run(uninterrupted), "charts/episodic_return")
    if "measure_every" in extra:  # measured at 200, 400 and 600 in both, 400 and 600 after the resume
        measured = losses(run_dir, "measure/log_q_z_given_s")
        assert measured == losses(only_run(uninterrupted), "measure/log_q_z_given_s") and sorted(measured) == [200, 400, 600]
        # ... and training does not notice the measure: without it, the same losses
        unmeasured = tmp_path / "unmeasured"
        unmeasured.mkdir()
        monkeypatch.chdir(unmeasured)
        module.main(make_args(name, env_id=env_id, total_timesteps=700, **{**extra, "measure_every": 0}))
        assert losses(only_run(unmeasured)) == expected


@pytest.mark.parametrize("name", ["sac", "mede", "diayn"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_saves_a_checkpoint_and_the_run_resumes(tmp_path, name, sig):
    script = os.path.join(ROOT, f"{SCRIPTS[name].SCRIPT}.py")
    flags = ["--env-id", "MultiGoal-v0", "--learning-starts", "100", "--eval-episodes", "1",
             "--hidden-dim", "16", *(["--disc-hidden-dim", "16", "--num-z", "3"] if name != "sac" else [])]
    run = subprocess.Popen([sys.executable, script, *flags, "--total-timesteps", "20000"], cwd=tmp_path,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in run.stderr:  # the first progress line (5%, step 1000): training is under way
        if line.startswith("step "):
            break
    run.send_signal(sig)
    stdout, stderr = run.communicate(timeout=120)
    assert run.returncode == 128 + sig
    message = stderr.strip().splitlines()[-1]
    assert message.startswith("interrupted at step") and "Resume with: " in message and "--resume" in message
    assert "Traceback" not in stderr
    run_dir = only_run(tmp_path)
    assert not (run_dir / "eval.json").exists(), "an interrupted run exits without evaluating"
    state = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    stopped_at = state["global_step"]
    assert 1000 <= stopped_at < 20000 and f"step {stopped_at}" in message

    # The printed command, exactly as printed (this interpreter, this script), from another directory.
    command = shlex.split(message.split("Resume with: ", 1)[1])
    assert command[:2] == [sys.executable, script]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run([*command, "--total-timesteps", str(stopped_at + 200)], cwd=elsewhere, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{run_dir}" in done.stdout and f"resuming at step {stopped_at}" in done.stdout.splitlines()[0]
    assert (run_dir / "eval.json").exists()
    assert max(losses(run_dir)) >= stopped_at + 100
    # TensorBoard: the resumed writer tells it to hide whatever the first process logged after the
    # checkpoint (a crash leaves such steps; they are logged again), and the hyperparameters are written once.
    purge_marks, hyperparameter_texts = [], 0
    for path in sorted(run_dir.glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            if event.HasField("session_log") and event.session_log.status == event.session_log.START:
                purge_marks.append(event.step)
            hyperparameter_texts += sum(value.tag.startswith("hyperparameters") for value in event.summary.value)
    assert purge_marks == [stopped_at] and hyperparameter_texts == 1


@pytest.mark.parametrize("name", ["sac", "mede", "diayn"])
def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys, name):
    module = SCRIPTS[name]
    agent_class = {"sac": module.SAC if name == "sac" else None, "mede": getattr(module, "MEDE", None),
                   "diayn": getattr(module, "DIAYN", None)}[name]
    real_update, calls = agent_class.update, []

    def poisoned_update(self, batch, step):
        calls.append(step)
        if len(calls) == 150:  # update 150 happens at step 249: after the checkpoint at 200
            with torch.no_grad():
                next(self.actor.parameters()).fill_(float("nan"))
        return real_update(self, batch, step)

    monkeypatch.setattr(agent_class, "update", poisoned_update)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        module.main(make_args(name, total_timesteps=1000, checkpoint_every=100))
    assert exit_info.value.code == cli.NAN == 3
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "NaN or infinite" in err and "last good checkpoint" in err and "intact" in err
    state = torch.load(only_run(tmp_path) / "checkpoint.pt", weights_only=False)
    assert state["global_step"] == 200
    assert all(torch.isfinite(t).all() for t in state["agent"]["actor"].values())
    assert not (only_run(tmp_path) / "eval.json").exists()


@pytest.mark.parametrize("name", ["sac", "mede", "diayn"])
def test_nan_in_the_last_updates_writes_no_model_and_no_evaluation(tmp_path, monkeypatch, capsys, name):
    # The in-loop check runs every 100 updates; a NaN in the very last update (step 399, after the
    # check at step 300 and with no checkpoint) must still be caught before the model is saved.
    module = SCRIPTS[name]
    agent_class = getattr(module, name.upper())
    real_update = agent_class.update

    def poisoned_update(self, batch, step):
        if step == 399:
            with torch.no_grad():
                next(self.actor.parameters()).fill_(float("nan"))
        return real_update(self, batch, step)

    monkeypatch.setattr(agent_class, "update", poisoned_update)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        module.main(make_args(name, total_timesteps=400, checkpoint_every=0, save_model=True))
    assert exit_info.value.code == cli.NAN
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "NaN or infinite" in err and "no model or evaluation written" in err and "no checkpoint" in err
    assert sorted(p.name for p in only_run(tmp_path).iterdir() if not p.name.startswith(("events", ".lock"))) == []


def test_checkpoint_writes_are_atomic(tmp_path, monkeypatch):
    path = str(tmp_path / "checkpoint.pt")
    files.atomic_save({"version": 1}, path)

    def crash(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        files.atomic_save({"version": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=False) == {"version": 1}


def command_error(script, *flags, cwd):
    out = subprocess.run([sys.executable, os.path.join(ROOT, script), *flags], cwd=cwd, capture_output=True,
                         text=True, timeout=120)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    return lines[0]


def test_a_checkpoint_of_another_run_is_rejected_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mede.main(make_args("mede", total_timesteps=200, checkpoint_every=200, num_z=3))
    checkpoint = str(only_run(tmp_path) / "checkpoint.pt")
    error = command_error("sac_continuous.py", "--resume", checkpoint, cwd=tmp_path)
    assert "written by mede_continuous.py, not sac_continuous.py" in error
    error = command_error("diayn_continuous.py", "--resume", checkpoint, cwd=tmp_path)
    assert "written by mede_continuous.py, not diayn_continuous.py" in error
    error = command_error("mede_continuous.py", "--resume", checkpoint, "--num-z", "4", cwd=tmp_path)
    assert "belongs to another run" in error and "--num-z 3 (asked: 4)" in error
    error = command_error("mede_continuous.py", "--resume", checkpoint, "--env-id", "MultiGoalTwo-v0", cwd=tmp_path)
    assert "--env-id 'MultiGoal-v0' (asked: 'MultiGoalTwo-v0')" in error
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(os.urandom(1000))
    assert "is not a readable checkpoint" in command_error("mede_continuous.py", "--resume", str(garbage), cwd=tmp_path)


def test_nothing_the_user_made_is_overwritten(tmp_path, monkeypatch):
    """Two runs started in the same second get two directories. A finished run that is extended
    keeps its earlier eval.json and model file under their step, and eval.json and the model file
    are always the latest."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(time, "time", lambda: 1_000_000.0)
    sac.main(make_args("sac", total_timesteps=200, learning_starts=100, checkpoint_every=200, save_model=True))
    sac.main(make_args("sac", total_timesteps=200, learning_starts=100))
    first, second = sorted((tmp_path / "runs").iterdir())
    assert second.name == first.name + ".1"
    before, model_before = (first / "eval.json").read_text(), (first / "sac_continuous.pt").read_bytes()
    sac.main(cli.parse_args(sac.Args, sac.__file__, ["--resume", str(first / "checkpoint.pt"), "--total-timesteps", "300"]))
    assert (first / "eval.step200.json").read_text() == before
    assert (first / "sac_continuous.step200.pt").read_bytes() == model_before
    assert json.loads((first / "eval.json").read_text())["global_step"] == 300
    assert torch.load(first / "sac_continuous.pt", weights_only=False)["global_step"] == 300
    assert np.isfinite([float(v) for v in losses(first).values()]).all()


# ------------------------------------------------------------------- checkpoint size (issue 11)
def checkpoint_size(root, name, **kwargs):
    root.mkdir()
    os.chdir(root)
    SCRIPTS[name].main(make_args(name, eval_episodes=0, **kwargs))
    return os.path.getsize(only_run(root) / "checkpoint.pt")


@pytest.mark.parametrize("name", ["sac", "mede"])
def test_checkpoint_size_grows_with_the_steps_taken_not_with_the_buffer_size(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    small = checkpoint_size(tmp_path / "a", name, total_timesteps=300, checkpoint_every=300, buffer_size=1_000)
    huge = checkpoint_size(tmp_path / "b", name, total_timesteps=300, checkpoint_every=300, buffer_size=1_000_000)
    longer = checkpoint_size(tmp_path / "c", name, total_timesteps=3000, checkpoint_every=3000, buffer_size=1_000_000)
    # A 1M-transition buffer of 2-D observations would take at least 1M x 22 bytes; 300 filled rows a few kB.
    assert abs(huge - small) < 1_000, (small, huge)
    assert 2_700 * 20 < longer - huge < 2_700 * 80, (huge, longer)


# --------------------------------------------------------------------- a copied script (issue 11)
def copy_of_mede(tmp_path):
    """`cp mede_continuous.py my_mede.py`, next to the modules it imports, as a researcher does."""
    project = tmp_path / "project"
    project.mkdir()
    for module in ("evaluation.py", "multigoal_env.py", "multidirection_ant.py"):
        shutil.copy(os.path.join(ROOT, module), project)
    shutil.copytree(os.path.join(ROOT, "run_utils"), project / "run_utils", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(os.path.join(ROOT, "mede_continuous.py"), project / "my_mede.py")
    return str(project / "my_mede.py")


SMALL_FLAGS = ["--env-id", "MultiGoal-v0", "--learning-starts", "100", "--eval-episodes", "1", "--hidden-dim", "16",
               "--disc-hidden-dim", "16", "--num-z", "3"]


def test_a_copied_script_names_its_runs_and_resumes_under_its_own_name_from_another_directory(tmp_path):
    script = copy_of_mede(tmp_path)
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir(), elsewhere.mkdir()
    run = subprocess.Popen([sys.executable, script, *SMALL_FLAGS, "--total-timesteps", "20000"], cwd=work,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in run.stderr:
        if line.startswith("step "):
            break
    run.send_signal(signal.SIGTERM)
    _, stderr = run.communicate(timeout=120)
    run_dir = only_run(work)
    assert "__my_mede__" in run_dir.name
    assert torch.load(run_dir / "checkpoint.pt", weights_only=False)["script"] == "my_mede"
    command = shlex.split(stderr.strip().splitlines()[-1].split("Resume with: ", 1)[1])
    assert command[:2] == [sys.executable, script]
    done = subprocess.run([*command, "--total-timesteps", "1500"], cwd=elsewhere, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert (run_dir / "eval.json").exists() and not (elsewhere / "runs").exists()
    # the original script refuses the copy's checkpoint in one line
    error = command_error("mede_continuous.py", "--resume", str(run_dir), cwd=elsewhere)
    assert "written by my_mede.py, not mede_continuous.py" in error


def test_a_checkpoint_with_flags_the_script_does_not_know_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mede.main(make_args("mede", total_timesteps=200, checkpoint_every=200))
    path = only_run(tmp_path) / "checkpoint.pt"
    state = torch.load(path, weights_only=False)
    state["args"]["entropy_schedule"] = "cosine"  # a flag of somebody's modified copy
    torch.save(state, path)
    error = command_error("mede_continuous.py", "--resume", str(path), cwd=tmp_path)
    assert "--entropy-schedule" in error and "does not have" in error


# ------------------------------------------------------ resume: a directory, a finished run (issue 11)
def test_resume_accepts_the_run_directory_and_rejects_other_files_in_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sac.main(make_args("sac", total_timesteps=200, checkpoint_every=200))
    run_dir = only_run(tmp_path)
    sac.main(cli.parse_args(sac.Args, sac.__file__, ["--resume", str(run_dir), "--total-timesteps", "300"]))
    assert torch.load(run_dir / "checkpoint.pt", weights_only=False)["global_step"] == 300
    assert "evaluation file, not a checkpoint" in command_error("sac_continuous.py", "--resume",
                                                                str(run_dir / "eval.json"), cwd=tmp_path)
    without = tmp_path / "run_without_checkpoint"  # a run that ran with --checkpoint-every 0
    sac.main(make_args("sac", total_timesteps=200, checkpoint_every=0, run_dir=str(without)))
    assert "holds no checkpoint.pt: the run wrote none" in command_error("sac_continuous.py", "--resume", str(without),
                                                                          cwd=tmp_path)
    # a directory of runs, not a run: the error says so (and does not blame --checkpoint-every)
    assert "runs is not a run directory" in command_error("sac_continuous.py", "--resume", "runs", cwd=tmp_path)


def test_resuming_a_finished_run_says_so_and_writes_nothing(tmp_path):
    flags = ["--env-id", "MultiGoal-v0", "--learning-starts", "100", "--total-timesteps", "200", "--eval-episodes", "1",
             "--hidden-dim", "16", "--checkpoint-every", "200"]
    script = os.path.join(ROOT, "sac_continuous.py")
    assert subprocess.run([sys.executable, script, *flags], cwd=tmp_path, capture_output=True).returncode == 0
    run_dir = only_run(tmp_path)
    before = sorted(p.name for p in run_dir.iterdir())
    again = subprocess.run([sys.executable, script, "--resume", str(run_dir)], cwd=tmp_path, capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "already finished at step 200" in again.stdout
    assert sorted(p.name for p in run_dir.iterdir()) == before, "nothing new is written"
    longer = shlex.split(again.stdout.split("To train it longer: ", 1)[1].strip())  # the printed command works
    assert subprocess.run(longer, cwd=tmp_path, capture_output=True, timeout=300).returncode == 0
    assert json.loads((run_dir / "eval.json").read_text())["global_step"] == 400
    assert json.loads((run_dir / "eval.step200.json").read_text())["global_step"] == 200


def test_a_run_that_never_learns_is_warned_about(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    sac.main(make_args("sac", total_timesteps=100, learning_starts=100))
    assert "only takes random actions and never learns" in capsys.readouterr().err


def test_run_dir_is_used_as_given_and_never_reused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sac.main(make_args("sac", total_timesteps=200, checkpoint_every=200, run_dir="trial/run"))
    assert (tmp_path / "trial" / "run" / "eval.json").exists() and not (tmp_path / "runs").exists()
    with pytest.raises(cli.UsageError, match="already holds a run; continue it with --resume"):
        sac.main(make_args("sac", total_timesteps=200, run_dir="trial/run"))
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(cli.UsageError, match="is not empty"):
        sac.main(make_args("sac", total_timesteps=200, run_dir="notes"))
    assert (tmp_path / "notes" / "todo.txt").read_text() == "mine"
    with pytest.raises(cli.UsageError, match="below the step this run has reached"):
        sac.main(cli.parse_args(sac.Args, sac.__file__, ["--resume", "trial/run", "--total-timesteps", "100"]))


# ------------------------------------------------------------------------- progress (issue 11)
def test_progress_rate_is_that_of_the_recent_steps_not_of_the_warm_up(monkeypatch, capsys):
    clock = [1000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    progress = progress_module.Progress(total=100_000, start=0, learning_starts=5_000)
    for second in range(1, 6):  # warm-up: 1000 random steps a second
        clock[0] += 1
        progress.update(1000 * second, None)
    for second in range(1, 121):  # learning: 50 steps a second
        clock[0] += 1
        progress.update(5000 + 50 * second, -3.0)
    assert progress.sps() == pytest.approx(50, rel=0.02)
    err = capsys.readouterr().err
    # said once, 30 s into learning (step 6550): (100000 - 6550) / 50 s = 0:31:09
    assert err.count("learning at 50 steps/s") == 1 and "take about 0:31:09" in err
    last = [line for line in err.splitlines() if line.startswith("step ")][-1]
    step = int(last.split()[1].split("/")[0])
    assert step > 5000 and "| 50 SPS |" in last and f"ETA {progress_module.format_duration((100_000 - step) / 50)}" in last


def test_progress_on_a_terminal_clears_the_rest_of_the_line(monkeypatch, capsys):
    clock = [0.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    progress = progress_module.Progress(total=1000, start=0, learning_starts=0)
    for step in range(1, 1001):
        clock[0] += 0.01
        progress.update(step, None)
    redraws = capsys.readouterr().err.split("\r")[1:]
    assert redraws and all(part.rstrip("\n").endswith("\033[K") for part in redraws)


# ------------------------------------------------------------- M. Ant directions (issue 15)
def test_evaluation_records_each_episodes_displacement_and_heading_on_multidirection_ant():
    constant = torch.tensor([0.5, -0.5, 0.5, -0.5, 0.5, -0.5, 0.5, -0.5])
    act = lambda obs, z: constant.expand(len(obs), -1) * (1 - 2 * z.unsqueeze(1))  # noqa: E731  (z = 1: the negative)
    per_z = evaluation.evaluate(act, mede.make_envs, "MultiDirectionAnt-v0", 2, 2, 7, torch.device("cpu"))
    # The same episodes by hand, torso positions from MuJoCo itself.
    import gymnasium as gym
    seeds = iter(range(7, 11))  # a vector env of 4 seeds env i with seed + i
    for k, entry in enumerate(per_z):
        for e in range(2):
            env = gym.make("MultiDirectionAnt-v0")
            env.reset(seed=next(seeds))
            start = env.unwrapped.get_body_com("torso")[:2].copy()
            done, steps, travelled, last = False, 0, 0.0, start
            while not done:
                _, _, terminated, truncated, _ = env.step((constant * (1 - 2 * k)).numpy())
                done, steps = terminated or truncated, steps + 1
                here = env.unwrapped.get_body_com("torso")[:2].copy()
                travelled, last = travelled + np.linalg.norm(here - last), here
            end = env.unwrapped.get_body_com("torso")[:2]
            np.testing.assert_allclose(entry["displacements"][e], end - start, atol=1e-9)
            dx, dy = end - start
            assert entry["headings"][e] == pytest.approx(np.degrees(np.arctan2(dy, dx)))
            assert entry["speeds"][e] == pytest.approx(np.hypot(dx, dy) / (steps * 0.05))  # Ant: 5 frames of 0.01 s
            assert entry["path_speeds"][e] == pytest.approx(travelled / (steps * 0.05))  # the distance along the path
            if e == 0:
                assert len(entry["path"]) == steps // 10 + 2 and entry["path"][-1] == pytest.approx(list(end))
    assert -180 <= per_z[0]["mean_heading"] <= 180


def test_evaluation_records_no_heading_where_the_env_reports_no_planar_position():
    act = lambda obs, z: torch.zeros(len(obs), 3)  # noqa: E731
    (entry,) = evaluation.evaluate(act, sac.make_envs, "Hopper-v5", 1, 1, 0, torch.device("cpu"))  # x, no y
    assert "headings" not in entry and len(entry["returns"]) == 1


def test_direction_diversity_by_hand():
    assert evaluation.direction_diversity([10.0, 100.0, -170.0, -80.0]) == {"min_heading_gap": 90.0, "quadrants": 4}
    assert evaluation.direction_diversity([5.0, 15.0, 355.0]) == {"min_heading_gap": 10.0, "quadrants": 2}
    assert evaluation.direction_diversity([-179.0, 179.0])["min_heading_gap"] == pytest.approx(2.0)


def test_distinct_running_directions_count_only_running_z_far_enough_apart():
    count = lambda headings, speeds: evaluation.direction_diversity(headings, speeds)["distinct_running_directions"]  # noqa: E731
    assert count([0.0, 90.0, 180.0, -90.0], [1.0, 1.0, 1.0, 1.0]) == 4
    assert count([0.0, 90.0, 180.0, -90.0], [1.0, 0.29, 1.0, 0.1]) == 2  # two z stand still
    assert count([0.0, 30.0, 60.0, 90.0], [1.0] * 4) == 2  # 0 and 60, or 30 and 90; no three are 45° apart
    assert count([0.0, 44.0, 89.0], [1.0] * 3) == 2  # the largest set (0, 89), not the greedy pairs
    assert count([170.0, -170.0], [1.0, 1.0]) == 1  # 20° apart across ±180
    assert count([0.0, 90.0], [0.0, 0.0]) == 0


# ------------------------------------------------------------ the held-out measure (issue 13)
def test_the_held_out_measure_cannot_be_inflated_by_memorising_the_replay_buffer():
    """Transitions whose z carries no information (a policy that ignores z): discriminators
    trained on a replay buffer of them memorise it, so their replay-batch log q rises far above
    chance, while the held-out measure, on fresh transitions, stays at chance or below. If the
    held-out path scored training data it would rise too, and this test would fail."""
    num_z, chance = 4, math.log(1 / 4)
    torch.manual_seed(0)
    args = mede.Args(num_z=num_z, hidden_dim=32, disc_hidden_dim=256, disc_lr=1e-3)
    agent = mede.MEDE(11, 3, -np.ones(3), np.ones(3), args, torch.device("cpu"))
    with torch.no_grad():
        agent.actor.net.weights[0][:, 11:] = 0  # the one-hot z no longer reaches the policy
    disc_sa, disc_s = agent.disc_sa, agent.disc_s
    # The replay buffer: 500 steps of each z's (identical) policy, labelled with that z.
    obs, actions, z, _, _ = evaluation.collect_transitions(agent.act, mede.make_envs, "Hopper-v4", num_z, 500, 1,
                                                          torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    for _ in range(2000):  # the discriminators' training on replay batches, as in `update`
        idx = torch.randint(len(z), (256,), generator=g)
        loss_sa, replay_log_q_sa, _ = disc_sa.loss(torch.cat([obs[idx], actions[idx]], -1), z[idx])
        loss_s, replay_log_q_s, _ = disc_s.loss(obs[idx], z[idx])
        agent.disc_optimizer.zero_grad()
        (loss_sa + loss_s).backward()
        agent.disc_optimizer.step()
    assert replay_log_q_sa > chance + 0.4 and replay_log_q_s > chance + 0.4, (replay_log_q_sa, replay_log_q_s)

    held_out = evaluation.held_out_measure(agent.act, mede.make_envs, "Hopper-v4", num_z, 500, 2, torch.device("cpu"),
                                           disc_sa=disc_sa, disc_s=disc_s)
    assert held_out["measure/log_q_z_given_sa"] < chance + 0.05, held_out
    assert held_out["measure/log_q_z_given_s"] < chance + 0.05, held_out
    assert held_out["measure/accuracy_z_given_sa"] < 0.25 + 0.05 and held_out["measure/accuracy_z_given_s"] < 0.3
    assert held_out["measure/probe_log_q_z_given_sa"] < chance + 0.05, held_out  # nor can the probe's
    assert held_out["measure/probe_log_q_z_given_s"] < chance + 0.05, held_out


@pytest.mark.parametrize("policies", ["identical", "disjoint actions"])
def test_the_probe_gives_chance_for_identical_policies_and_near_certainty_for_disjoint_action_ranges(policies):
    """The probe (issue 38) on policies whose discriminability is known: four z that act alike (no
    classifier can beat chance on held-out data), and four whose actions lie in disjoint ranges
    (z = k acts in [-1 + k/2, -1/2 + k/2] on both axes: (s, a) tells z for sure). It trains
    neither discriminator and leaves the run's random numbers as they were."""
    num_z, chance = 4, math.log(1 / 4)

    def act(obs, z):
        u = torch.rand(len(z), 2)
        return 2 * u - 1 if policies == "identical" else -1 + 0.5 * z.unsqueeze(1) + 0.5 * u

    torch.manual_seed(0)
    disc_sa, disc_s = mede.Discriminator(4, 256, num_z), mede.Discriminator(2, 256, num_z)
    weights = [p.clone() for p in [*disc_sa.parameters(), *disc_s.parameters()]]
    random_state = torch.get_rng_state()
    measured = evaluation.held_out_measure(act, mede.make_envs, "MultiGoal-v0", num_z, 500, 3, torch.device("cpu"),
                                           disc_sa=disc_sa, disc_s=disc_s)
    assert measured["measure/chance_log_q"] == pytest.approx(chance) and measured["measure/chance_accuracy"] == 0.25
    if policies == "identical":
        for given in ("sa", "s"):
            assert abs(measured[f"measure/probe_accuracy_z_given_{given}"] - 0.25) < 0.04, measured
            assert abs(measured[f"measure/probe_log_q_z_given_{given}"] - chance) < 0.03, measured
    else:
        assert measured["measure/probe_accuracy_z_given_sa"] > 0.95, measured
        assert measured["measure/probe_log_q_z_given_sa"] > -0.15, measured
        assert measured["measure/probe_accuracy_z_given_s"] > 0.25 + 0.1, measured  # where each z drifts to
    assert all(torch.equal(p, w) for p, w in zip([*disc_sa.parameters(), *disc_s.parameters()], weights))
    assert torch.equal(torch.get_rng_state(), random_state)


# ----------------------------------------------------- files written before today's flags
# written by commit 06152c6 (2026-11), before --bf16 and --cuda-graphs; their discriminators renamed to
# disc_sa and disc_s on 2026-12-04, as the files of 2026-12-02 on name them
DATA = os.path.join(ROOT, "tests", "data")


@pytest.mark.parametrize("name", ["mede", "diayn"])
def test_model_files_written_before_newer_flags_still_load(name):
    path = os.path.join(DATA, f"{name}_model_2026-11.torch")
    saved = torch.load(path, map_location="cpu", weights_only=False)["agent"]
    agent, args = SCRIPTS[name].load_model(path)
    for network in ("actor", "disc_sa", "disc_s"):
        for key, value in getattr(agent, network).state_dict().items():
            assert torch.equal(value, saved[network][key]), f"{network} is not the file's"
    assert args.bf16 is False and args.cuda_graphs is True and args.compile is False  # flags newer than the file take their defaults
    assert agent.precision == "float32"  # a file without a precision was trained in float32


@pytest.mark.parametrize("name", ["mede", "diayn"])
def test_a_file_this_version_cannot_load_is_one_line_not_a_traceback(tmp_path, name):
    """Files from before the discriminators' rename (disc, state_disc) no longer load: they say so."""
    old_names = {"mede": {"disc_sa": "disc", "disc_s": "state_disc"}, "diayn": {"disc_s": "disc", "disc_sa": "action_disc"}}
    for kind in ("model", "checkpoint"):
        state = torch.load(os.path.join(DATA, f"{name}_{kind}_2026-11.torch"), weights_only=False)
        state["agent"] = {old_names[name].get(key, key): value for key, value in state["agent"].items()}
        torch.save(state, tmp_path / f"{kind}.pt")
    with pytest.raises(cli.UsageError, match="holds networks that this version of .* cannot load"):
        SCRIPTS[name].load_model(str(tmp_path / "model.pt"))
    (tmp_path / "run").mkdir()
    shutil.move(tmp_path / "checkpoint.pt", tmp_path / "run" / "checkpoint.pt")
    error = command_error(f"{name}_continuous.py", "--resume", str(tmp_path / "run"), cwd=tmp_path)
    assert "holds networks that this version of" in error and "older version" in error


@pytest.mark.parametrize("name", ["mede", "diayn"])
def test_checkpoints_written_before_newer_flags_still_resume(tmp_path, name):
    run_dir = tmp_path / "old_run"
    run_dir.mkdir()
    shutil.copy(os.path.join(DATA, f"{name}_checkpoint_2026-11.torch"), run_dir / "checkpoint.pt")
    module = SCRIPTS[name]
    result = module.main(cli.parse_args(module.Args, module.__file__,
                                        ["--resume", str(run_dir), "--total-timesteps", "400"]))
    assert result["global_step"] == 400 and result["precision"] == "float32"


def test_multigoal_evaluation_records_each_episodes_goal_and_the_goals_compass_names():
    to_east = lambda obs, z: torch.tensor([[1.0, 0.0]]).expand(len(obs), -1) * (1 - 2 * z.unsqueeze(1))  # noqa: E731
    per_z = evaluation.evaluate(to_east, mede.make_envs, "MultiGoal-v0", 2, 3, 0, torch.device("cpu"))
    result = evaluation.summarize(per_z)
    assert result["goal_names"] == ["E", "W", "N", "S"] and result["distinct_goals"] == 2
    assert per_z[0]["goals"] == [0, 0, 0] and per_z[0]["goal"] == "E"
    assert per_z[1]["goals"] == [1, 1, 1] and per_z[1]["goal"] == "W"


@pytest.mark.parametrize("name, kwargs", [("sac", {}), ("mede", {}), ("mede", {"separate_networks": True}),
                                          ("diayn", {})])
def test_the_readmes_rollout_of_a_saved_model_works_on_what_env_reset_returns(tmp_path, monkeypatch, name, kwargs):
    monkeypatch.chdir(tmp_path)
    SCRIPTS[name].main(make_args(name, total_timesteps=200, save_model=True, **kwargs))
    (model,) = only_run(tmp_path).glob("*.pt")
    agent, _ = SCRIPTS[name].load_model(str(model))
    import gymnasium as gym
    env = gym.make("MultiGoal-v0")
    obs, _ = env.reset(seed=0)
    for z in range(1 if name == "sac" else 3):
        for deterministic in (True, False):
            action = agent.policy(obs, z=z, deterministic=deterministic)
            assert action.shape == (2,) and env.action_space.contains(action.astype(np.float32))
    if name != "sac":  # policy z is the deterministic action of z: row z of the ensemble, or z's one-hot
        x = torch.as_tensor(obs).view(1, 1, 2)
        for z in range(3):
            if kwargs:
                mean = agent.actor.net(x.expand(3, 1, 2))[z, 0, :2]
            else:
                mean = agent.actor.net(torch.cat([x, torch.eye(3)[z].view(1, 1, 3)], -1))[0, 0, :2]
            expected = torch.tanh(mean) * agent.actor.action_scale + agent.actor.action_bias
            np.testing.assert_allclose(agent.policy(obs, z=z), expected.detach().numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="z is one of 0..2" if name != "sac" else "one policy: z is 0"):
        agent.policy(obs, z=7)  # a clear line, not torch's index error


def test_a_bf16_model_acts_in_bf16_as_it_trained_and_as_eval_json_scored_it(tmp_path, monkeypatch):
    monkeypatch.setenv(hardware.EMULATED_BF16, "1")
    monkeypatch.chdir(tmp_path)
    result = mede.main(make_args("mede", total_timesteps=200, save_model=True, bf16=True, eval_episodes=2))
    agent, _ = mede.load_model(str(only_run(tmp_path) / "mede_continuous.pt"))
    assert agent.precision == "bfloat16"
    import gymnasium as gym
    env = gym.make("MultiGoal-v0")
    episode_return, (obs, _), done = 0.0, env.reset(seed=1 + evaluation.EVAL_SEED_OFFSET), False
    while not done:  # the evaluation's first episode of z = 0, replayed through agent.policy
        obs, reward, terminated, truncated, _ = env.step(agent.policy(obs, z=0))
        episode_return, done = episode_return + reward, terminated or truncated
    assert episode_return == pytest.approx(result["per_z"][0]["returns"][0], abs=1e-6)
    agent.precision = "float32"  # the same weights acting in float32 give other actions
    obs, _ = env.reset(seed=3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        in_bf16 = agent.actor.net(torch.cat([torch.as_tensor(obs).view(1, 1, 2), torch.eye(3)[:1].view(1, 1, 3)], -1))
    assert not np.allclose(agent.policy(obs, z=0), (torch.tanh(in_bf16[0, 0, :2]) * agent.actor.action_scale
                                                    + agent.actor.action_bias).detach().numpy(), atol=0, rtol=0)


# ------------------------------------------------------------ files that load on any device (issue 36)
def test_a_cpu_run_saves_no_cuda_random_state_and_a_cuda_state_is_skipped_with_a_note_on_a_cpu(
        tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    sac.main(make_args("sac", total_timesteps=200, checkpoint_every=200))
    path = only_run(tmp_path) / "checkpoint.pt"
    state = torch.load(path, weights_only=False)
    assert "cuda" not in state["rng"], "a CPU run has no CUDA random state to save"
    state["rng"]["cuda"] = torch.zeros(16, dtype=torch.uint8)  # as a CUDA run's checkpoint holds it
    torch.save(state, path)
    capsys.readouterr()
    result = sac.main(cli.parse_args(sac.Args, sac.__file__, ["--resume", str(path), "--total-timesteps", "300"]))
    assert result["global_step"] == 300
    assert "note: the checkpoint's CUDA random state is skipped: this run is on the CPU" in capsys.readouterr().err



# ------------------------------------------------------------ environments the scripts meet (issue 37)
class GoalEnvWithALambda(__import__("multigoal_env").MultiGoalEnv):
    """A user's environment with an attribute that deep-copies but does not pickle."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.shaping = lambda reward: reward


class UnboundedActions(__import__("multigoal_env").MultiGoalEnv):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        import gymnasium as gym
        self.action_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)


def test_an_environment_that_does_not_pickle_is_checkpointed_without_its_state_and_resumes(
        tmp_path, monkeypatch, capsys):
    import gymnasium as gym
    gym.register("GoalWithALambda-v0", entry_point=GoalEnvWithALambda, max_episode_steps=30)
    monkeypatch.chdir(tmp_path)
    sac.main(make_args("sac", env_id="GoalWithALambda-v0", total_timesteps=300, checkpoint_every=100))
    err = capsys.readouterr().err
    assert err.count("cannot be saved") == 1 and "env(s) [0]" in err, err  # one warning line, not one per checkpoint
    run_dir = only_run(tmp_path)
    assert torch.load(run_dir / "checkpoint.pt", weights_only=False)["global_step"] == 300
    result = sac.main(cli.parse_args(sac.Args, sac.__file__, ["--resume", str(run_dir), "--total-timesteps", "400"]))
    assert result["global_step"] == 400
    assert "start a new episode" in capsys.readouterr().out


def test_an_unbounded_action_space_is_refused_with_the_reason(tmp_path, monkeypatch):
    import gymnasium as gym
    gym.register("UnboundedGoal-v0", entry_point=UnboundedActions, max_episode_steps=30)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(cli.UsageError, match="unbounded action space.*tanh.*RescaleAction"):
        mede.main(make_args("mede", env_id="UnboundedGoal-v0"))
    assert not (tmp_path / "runs").exists()


def test_an_optimizer_keeps_how_this_process_runs_it_when_a_checkpoint_of_another_device_is_loaded():
    """A CUDA run's Adam is `capturable` (for CUDA graphs), a CPU run's is not: the flags come from the
    process, not the file. (Before, a CPU checkpoint resumed on CUDA failed at the first captured step.)"""
    from run_utils import checkpoint
    agent = mede.MEDE(4, 2, -np.ones(2), np.ones(2), mede.Args(num_z=3, hidden_dim=16, disc_hidden_dim=16),
                      torch.device("cpu"))
    state = checkpoint.state_of(agent.modules())
    for name in ("q_optimizer", "actor_optimizer", "disc_optimizer"):
        for group in state[name]["param_groups"]:
            group["capturable"] = True  # as a CUDA run writes it
    checkpoint.load_state(agent.modules(), state)
    for name in ("q_optimizer", "actor_optimizer", "disc_optimizer"):
        assert all(group["capturable"] is False and group["fused"] for group in getattr(agent, name).param_groups)


@pytest.mark.parametrize("name", ["sac", "mede", "diayn"])
def test_main_keys_the_cuda_graphs_by_every_choice_the_update_makes(tmp_path, monkeypatch, name):
    """On CUDA one graph is captured per key and replayed for every update with that key: the key must
    tell apart updates that train the actor and updates that move the targets (else a graph captured on
    one would replay on the other). Acting has one graph. Checked on the CPU through the keys that main
    hands to the run (acting's first, then the update's)."""
    keys = []
    monkeypatch.setattr(Run, "compiled", lambda self, function, key: keys.append(key) or function)
    monkeypatch.chdir(tmp_path)
    SCRIPTS[name].main(make_args(name, total_timesteps=200, policy_frequency=2, target_network_frequency=3))
    act_key, train_key = keys
    obs, z = (torch.zeros(1, 2), torch.ones(1, 2)), (torch.zeros(1, dtype=torch.long), torch.ones(1, dtype=torch.long))
    inputs = [(o,) if name == "sac" else (o, zi) for o, zi in zip(obs, z)]  # acting's inputs: obs (and z)
    assert act_key(*inputs[0]) == act_key(*inputs[1])  # new observations replay the same graph
    assert [train_key(None, step) for step in range(7)] == [(step % 2 == 0, step % 3 == 0) for step in range(7)]


def test_the_replay_buffer_returns_what_was_stored_field_by_field_and_loads_the_older_checkpoints():
    """The buffer packs a step's fields into one row; a batch must still give every field of the row it
    names, in the field's dtype (z an int64 index), and the checkpoint holds the fields by name, as
    before the packing, so a checkpoint written then resumes now."""
    rng = np.random.default_rng(0)
    rb, stored = ReplayBuffer(mede.Batch, 6, 2, torch.device("cpu")), []
    for _ in range(9):  # wraps around: rows 0-2 are overwritten
        step = dict(obs=rng.normal(size=(2, 3)), actions=rng.uniform(-1, 1, (2, 2)), rewards=rng.normal(size=2),
                    next_obs=rng.normal(size=(2, 3)), terminations=rng.uniform(size=2) < 0.5, z=rng.integers(5, size=2))
        rb.add(**step)
        stored.append(step)
    rows = torch.tensor([[0, 5, 3], [2, 2, 4]])  # member 0 reads rows 0, 5, 3; member 1 rows 2, 2, 4
    batch = rb.batch(rows)
    ring = [stored[6], stored[7], stored[8], stored[3], stored[4], stored[5]]  # row i after the wrap
    for name in mede.Batch._fields:
        expected = np.stack([[ring[r][name][m] for r in rows[m].tolist()] for m in range(2)])
        assert getattr(batch, name).dtype == (torch.long if name == "z" else torch.float32), name
        np.testing.assert_array_equal(getattr(batch, name).numpy(), expected.astype(np.int64 if name == "z" else np.float32))
    # the checkpoint's format before the packing: each field [size, M, ...], float32, z int64
    older = {name: torch.as_tensor(np.stack([np.asarray(step[name]) for step in ring]),
                                   dtype=torch.long if name == "z" else torch.float32) for name in mede.Batch._fields}
    older |= {"pos": 3, "size": 6}
    state = rb.state_dict()
    assert state.keys() == older.keys()
    for name in mede.Batch._fields:
        assert state[name].dtype == older[name].dtype and torch.equal(state[name], older[name]), name
    assert (state["pos"], state["size"]) == (3, 6)
    loaded = ReplayBuffer(mede.Batch, 6, 2, torch.device("cpu"))
    loaded.load_state_dict(older)
    for a, b in zip(loaded.batch(rows), batch):
        assert a.dtype == b.dtype and torch.equal(a, b)


@pytest.mark.parametrize("batch", [(torch.zeros(2), torch.ones(2)), np.zeros(2)], ids=["tuple", "array"])
def test_cuda_graphs_refuse_inputs_they_would_fix_at_the_capture(batch):
    """A tensor inside a tuple (a whole batch), or an array, would be fixed at the capture and silently
    replayed with the first call's values: the graphs take tensors as arguments of their own."""
    graphs = hardware.CudaGraphs(lambda batch, step: batch, key=lambda batch, step: step)
    with pytest.raises(TypeError, match="argument of its own"):
        graphs(batch, 0)
