"""Long runs survive (all three scripts): checkpoints, exact resume, SIGTERM/SIGINT, NaN, and
checkpoints of another run rejected."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import diayn_continuous as diayn
import mede_continuous as mede
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
    resumed = module.main(module.parse_args(["--resume", checkpoint, "--total-timesteps", "700"]))
    assert only_run(interrupted) == run_dir, "a resumed run keeps its directory"

    expected, got = losses(only_run(uninterrupted)), losses(run_dir)
    after = [step for step in expected if step > 300]
    assert len(after) >= 2
    for step in after:  # on the CPU, the same numbers bit for bit
        assert got[step] == expected[step], f"step {step}"
    assert resumed["per_z"] == full["per_z"]
    episodes = losses(run_dir, "charts/episodic_return")
    assert episodes == losses(only_run(uninterrupted), "charts/episodic_return")


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
    assert message.startswith("interrupted at step") and "Resume with: python" in message and "--resume" in message
    assert "Traceback" not in stderr
    run_dir = only_run(tmp_path)
    assert not (run_dir / "eval.json").exists(), "an interrupted run exits without evaluating"
    state = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    stopped_at = state["global_step"]
    assert 1000 <= stopped_at < 20000 and f"step {stopped_at}" in message

    done = subprocess.run([sys.executable, script, "--resume", str(run_dir / "checkpoint.pt"),
                           "--total-timesteps", str(stopped_at + 200)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"resuming {run_dir.name} at step {stopped_at}" in done.stdout
    assert (run_dir / "eval.json").exists()
    assert max(losses(run_dir)) >= stopped_at + 100


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
    assert exit_info.value.code == 1
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
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "NaN or infinite" in err and "no model or evaluation written" in err and "no checkpoint" in err
    assert sorted(p.name for p in only_run(tmp_path).iterdir() if not p.name.startswith("events")) == []


def test_checkpoint_writes_are_atomic(tmp_path, monkeypatch):
    path = str(tmp_path / "checkpoint.pt")
    sac.atomic_save({"version": 1}, path)

    def crash(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        sac.atomic_save({"version": 2}, path)
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
    """Two runs started in the same second get two directories; a resumed, finished run keeps
    its first eval.json and model file and writes numbered new ones."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(time, "time", lambda: 1_000_000.0)
    sac.main(make_args("sac", total_timesteps=200, learning_starts=100, checkpoint_every=200, save_model=True))
    sac.main(make_args("sac", total_timesteps=200, learning_starts=100))
    first, second = sorted((tmp_path / "runs").iterdir())
    assert second.name == first.name + ".1"
    before = (first / "eval.json").read_text()
    sac.main(sac.parse_args(["--resume", str(first / "checkpoint.pt"), "--total-timesteps", "300"]))
    assert (first / "eval.json").read_text() == before
    assert (first / "eval.1.json").exists() and (first / "sac_continuous.1.pt").exists()
    assert np.isfinite([float(v) for v in losses(first).values()]).all()
