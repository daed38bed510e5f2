"""The faults a long sweep meets, injected: a second writer, a signal after training, a full disk,
a NaN, a killed Ray worker, a Ctrl-C or SIGTERM of the sweep. Each test injects the fault itself."""

import errno
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

import evaluation
import mede_continuous as mede
from run_utils import cli
from run_utils.run import Run
import sac_continuous as sac

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# On the CPU: these faults are the file system's and the processes', and a CUDA process writes files of its own
# (kernel caches) that a file-size limit would refuse.
SMALL = ["--env-id", "MultiGoal-v0", "--hidden-dim", "16", "--learning-starts", "100", "--eval-episodes", "1",
         "--no-cuda"]


def args_of(module, *flags):
    return cli.parse_args(module.Args, module.__file__, [*SMALL, *flags])


def wait_for(condition, what: str, timeout: float = 300):
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


# ------------------------------------------------------------------------- one run directory
def test_a_second_process_on_a_live_run_directory_is_refused_in_one_line(tmp_path):
    script = os.path.join(ROOT, "sac_continuous.py")
    first = subprocess.Popen([sys.executable, script, *SMALL, "--total-timesteps", "100000", "--run-dir", "run",
                              "--checkpoint-every", "200"], cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (tmp_path / "run" / "checkpoint.pt").exists(), "the first run's checkpoint")
        second = subprocess.run([sys.executable, script, "--resume", "run"], cwd=tmp_path, capture_output=True,
                                text=True, timeout=120)
        assert second.returncode == cli.BAD_INPUT
        assert second.stderr.strip() == (f"sac_continuous.py: error: {tmp_path / 'run'} is in use by process "
                                         f"{first.pid} on {os.uname().nodename}: one run directory, one writer")
    finally:
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=120)
    assert first.returncode == 128 + signal.SIGTERM  # and it was not disturbed
    stopped_at = int(re.search(r"interrupted at step (\d+)", err).group(1))
    resumed = subprocess.run([sys.executable, script, "--resume", "run", "--total-timesteps", str(stopped_at + 100)],
                             cwd=tmp_path, capture_output=True, text=True, timeout=300)  # the lock died with the first
    assert resumed.returncode == 0, resumed.stderr


# ---------------------------------------------------------------- a signal after training
def test_a_sigterm_during_the_evaluation_checkpoints_and_the_resume_redoes_only_the_evaluation(
        tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    real_evaluate, calls = evaluation.evaluate, []

    def evaluate_then_get_sigterm(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:  # the cluster's SIGTERM arrives in the middle of the first evaluation
            os.kill(os.getpid(), signal.SIGTERM)
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(evaluation, "evaluate", evaluate_then_get_sigterm)
    with pytest.raises(SystemExit) as stopped:  # no periodic checkpoint: the signal must write one
        mede.main(args_of(mede, "--total-timesteps", "300", "--checkpoint-every", "0", "--save-model",
                          "--disc-hidden-dim", "16", "--run-dir", "run"))
    assert stopped.value.code == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    assert "interrupted at step 300; checkpoint saved. Resume with:" in err
    run_dir = tmp_path / "run"
    assert torch.load(run_dir / "checkpoint.pt", weights_only=False)["global_step"] == 300
    assert not (run_dir / "eval.json").exists() and (run_dir / "mede_continuous.pt").exists()
    command = err.split("Resume with: ", 1)[1].split()
    assert command[-2:] == ["--resume", str(run_dir)]

    trained = []
    monkeypatch.setattr(mede.MEDE, "update", lambda *a, **k: trained.append(1))
    result = mede.main(cli.parse_args(mede.Args, mede.__file__, command[-2:]))
    assert trained == [] and len(calls) == 2, "the resume trains nothing and evaluates once"
    assert result["global_step"] == 300 and (run_dir / "eval.json").exists()
    assert sorted(p.name for p in run_dir.glob("*.pt")) == ["checkpoint.pt", "mede_continuous.pt"]  # no duplicate


def test_a_signal_between_training_and_the_evaluation_is_not_lost(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    real_finish = Run.finish

    def signal_first(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # arrives while signals are still deferred
        return real_finish(self, *args, **kwargs)

    monkeypatch.setattr(Run, "finish", signal_first)
    with pytest.raises(SystemExit) as stopped:
        sac.main(args_of(sac, "--total-timesteps", "200", "--checkpoint-every", "0", "--run-dir", "run"))
    assert stopped.value.code == 128 + signal.SIGINT
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["global_step"] == 200


# ---------------------------------------------------------------------------- a full disk
def test_a_full_disk_during_a_checkpoint_keeps_the_last_one_and_stops_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    real_save, saves = torch.save, []

    def disk_fills_up(obj, f, *args, **kwargs):
        saves.append(1)
        if len(saves) == 2:  # the second checkpoint: half written, then ENOSPC
            f.write(b"x" * 1000)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", disk_fills_up)
    with pytest.raises(SystemExit) as stopped:
        sac.main(args_of(sac, "--total-timesteps", "1000", "--checkpoint-every", "200", "--run-dir", "run"))
    monkeypatch.undo()
    assert stopped.value.code == cli.FAILED
    (line,) = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert line.startswith("sac_continuous.py: error: cannot write the checkpoint at step 400 (No space left on device)")
    assert "the last checkpoint (step 200) is intact" in line and "--resume" in line
    run_dir = tmp_path / "run"
    assert torch.load(run_dir / "checkpoint.pt", weights_only=False)["global_step"] == 200
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")], "no temporary file is left"
    assert not (run_dir / "eval.json").exists()


def test_a_write_the_file_system_refuses_keeps_the_last_checkpoint_and_stops_in_one_line(tmp_path):
    """Not a mock: RLIMIT_FSIZE makes the kernel refuse to grow any file past a size, as a full disk
    refuses to grow it; the checkpoint at step 1000 is larger than the one at 200 (its buffer grew)."""
    import resource
    script = os.path.join(ROOT, "sac_continuous.py")
    flags = [*SMALL, "--hidden-dim", "64", "--run-dir", "run"]
    first = subprocess.run([sys.executable, script, *flags, "--total-timesteps", "200", "--checkpoint-every", "200"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    limit = checkpoint.stat().st_size + 2000

    def file_size_limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG

    done = subprocess.run([sys.executable, script, "--resume", "run", "--total-timesteps", "2000",
                           "--checkpoint-every", "1000"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          preexec_fn=file_size_limit)
    assert done.returncode == cli.FAILED, done.stderr
    (line,) = [line for line in done.stderr.splitlines() if "error" in line]
    assert line.startswith("sac_continuous.py: error: cannot write the checkpoint at step 1000 (File too large)")
    assert "the last checkpoint (step 200) is intact" in line and "Traceback" not in done.stderr
    assert torch.load(checkpoint, weights_only=False)["global_step"] == 200
    assert not [p.name for p in checkpoint.parent.iterdir() if p.name.endswith(".tmp")]


# ------------------------------------------------------- a resumed run does not hold the old file
def test_a_resumed_run_does_not_keep_the_replaced_checkpoint_mapped(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sac.main(args_of(sac, "--total-timesteps", "300", "--checkpoint-every", "100", "--run-dir", "run"))
    held = []
    real_save = Run.save_checkpoint

    def save_and_look(self, *args, **kwargs):
        real_save(self, *args, **kwargs)
        with open("/proc/self/maps") as f:  # mappings of files that no longer exist: "... (deleted)"
            held.extend(line for line in f if "checkpoint.pt" in line and "(deleted)" in line)

    monkeypatch.setattr(Run, "save_checkpoint", save_and_look)
    sac.main(cli.parse_args(sac.Args, sac.__file__, ["--resume", "run", "--total-timesteps", "500"]))
    assert held == []


# --------------------------------------------------------------------------------- sweeps
needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="sweep.py needs Ray")
GRID = ["--env-ids", "MultiGoal-v0", "--num-cpus", "2", "--checkpoint-every", "100"]
TINY = ["--hidden-dim", "16", "--learning-starts", "100", "--eval-episodes", "1", "--no-cuda"]


def scripts_in(run_dir) -> list[int]:
    """Processes of a training script whose command line names `run_dir`."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if any(arg.endswith("_continuous.py") for arg in argv) and str(run_dir) in argv:
            pids.append(int(pid))
    return pids


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


@needs_ray
def test_a_nan_is_not_retried_and_the_sweep_says_it_was_a_nan(tmp_path):
    result = subprocess.run([sys.executable, "sweep.py", "--scripts", "sac_continuous.py", *GRID, "--seeds", "1",
                             "--dir", str(tmp_path / "s"), "--", *TINY, "--total-timesteps", "400",
                             "--q-lr", "1e30"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result.stdout + result.stderr
    (log,) = (tmp_path / "s" / "logs").glob("*.log")
    assert log.read_text().count("=== attempt") == 1 and "=== exit code 3 (a loss became NaN)" in log.read_text()
    assert re.search(r"FAILED +sac_continuous__\S+: a loss became NaN: .*NaN or infinite.* not retried", result.stdout)


@needs_ray
def test_a_killed_ray_worker_takes_its_script_along_and_the_retry_is_the_only_writer(tmp_path):
    directory = tmp_path / "s"
    sweep = subprocess.Popen([sys.executable, "sweep.py", "--scripts", "sac_continuous.py", *GRID, "--seeds", "1",
                              "--dir", str(directory), "--", *TINY, "--total-timesteps", "3000"],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen_together = []
    try:
        wait_for(lambda: list(directory.glob("sac_continuous__*/checkpoint.pt")), "a checkpoint")
        (run_dir,) = directory.glob("sac_continuous__*")
        (script,) = scripts_in(run_dir)
        worker = parent_of(script)
        os.kill(worker, signal.SIGKILL)  # the Ray worker dies; its script must not go on
        wait_for(lambda: not os.path.exists(f"/proc/{script}") or open(f"/proc/{script}/stat").read().split()[2] == "Z",
                 "the script to die with its worker", timeout=30)
        while sweep.poll() is None:  # until the retry has finished: never two scripts in the run directory
            pids = scripts_in(run_dir)
            if len(pids) > 1:
                seen_together.append(pids)
            time.sleep(0.05)
        stdout, stderr = sweep.communicate()
    finally:
        sweep.kill()
    assert sweep.returncode == 0, stdout + stderr
    assert seen_together == []
    log = (directory / "logs" / f"{run_dir.name}.log").read_text()
    assert "=== attempt 2 on " in log and f"--resume {run_dir}" in log and "is in use by" not in log
    assert (run_dir / "eval.json").exists()


@needs_ray
@pytest.mark.parametrize("stop", ["ctrl-c", "kill"])
def test_ctrl_c_or_kill_of_the_sweep_checkpoints_every_trial_and_a_rerun_resumes_them_all(tmp_path, stop):
    directory = tmp_path / "s"
    command = [sys.executable, "sweep.py", "--scripts", "sac_continuous.py", *GRID, "--seeds", "1", "2",
               "--dir", str(directory), "--", *TINY, "--total-timesteps", "4000"]
    # "kill": the sweep starts with SIGINT ignored, as `python sweep.py ... &` in a script starts it
    ignore_sigint = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if stop == "kill" else None
    sweep = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True,  # a process group of its own, as a terminal gives a job
                             preexec_fn=ignore_sigint)
    try:
        wait_for(lambda: len(list(directory.glob("sac_continuous__*/checkpoint.pt"))) == 2, "two checkpoints")
        if stop == "ctrl-c":
            os.killpg(sweep.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole foreground group
        else:
            os.kill(sweep.pid, signal.SIGTERM)  # `kill PID`: the sweep alone
        signalled = time.time()
        stdout, stderr = sweep.communicate(timeout=120)
    finally:
        sweep.kill()
    assert sweep.returncode == (130 if stop == "ctrl-c" else 143), stdout + stderr
    # the trials were cancelled at once, not found still running after the sweep's 60 s wait for them
    assert time.time() - signalled < 40, stdout
    assert "stopped. Run the same command again to continue" in stdout
    steps = {}
    for log in (directory / "logs").glob("*.log"):
        text = log.read_text()
        assert re.search(r"=== exit code 143 \(interrupted by SIGTERM, checkpoint written\)", text), text[-2000:]
        steps[log.stem] = int(re.search(r"interrupted at step (\d+)", text).group(1))
    assert len(steps) == 2 and all(0 < step < 4000 for step in steps.values())
    for run_dir in directory.glob("sac_continuous__*"):
        assert scripts_in(run_dir) == []  # nothing left running
        assert torch.load(run_dir / "checkpoint.pt", weights_only=False)["global_step"] == steps[run_dir.name]

    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(re.findall(r"start +\S+ \(attempt 1 of 4, resuming from its checkpoint\)", again.stdout)) == 2
    for run_dir in directory.glob("sac_continuous__*"):
        assert json.loads((run_dir / "eval.json").read_text())["global_step"] == 4000


@needs_ray
def test_a_sweeps_total_timesteps_extends_its_finished_trials(tmp_path):
    directory = tmp_path / "s"
    command = [sys.executable, "sweep.py", "--scripts", "sac_continuous.py", *GRID, "--seeds", "1",
               "--dir", str(directory), "--", *TINY, "--total-timesteps", "300"]
    assert subprocess.run(command, cwd=ROOT, capture_output=True, timeout=600).returncode == 0
    longer = subprocess.run([*command[:2], "--total-timesteps", "500", *command[2:]], cwd=ROOT, capture_output=True,
                            text=True, timeout=600)
    assert longer.returncode == 0, longer.stdout + longer.stderr
    (run_dir,) = directory.glob("sac_continuous__*")  # the same trial directory
    assert json.loads((run_dir / "eval.json").read_text())["global_step"] == 500
    assert json.loads((run_dir / "eval.step300.json").read_text())["global_step"] == 300
    assert "resuming from its checkpoint" in longer.stdout


def test_the_lock_of_a_run_that_failed_before_training_is_let_go_in_the_same_process(tmp_path, monkeypatch):
    """A notebook or a test calls main() again after an error raised between Run() and training."""
    import gc
    monkeypatch.chdir(tmp_path)
    sac.main(args_of(sac, "--total-timesteps", "200", "--checkpoint-every", "200", "--run-dir", "run"))

    def broken_envs(env_id, num_envs):
        raise RuntimeError("the environment broke")

    monkeypatch.setattr(sac, "make_envs", broken_envs)
    with pytest.raises(RuntimeError):
        sac.main(cli.parse_args(sac.Args, sac.__file__, ["--resume", "run", "--total-timesteps", "300"]))
    monkeypatch.undo()
    gc.collect()  # the failed run's Run is garbage: its lock goes with it
    monkeypatch.chdir(tmp_path)
    result = sac.main(cli.parse_args(sac.Args, sac.__file__, ["--resume", "run", "--total-timesteps", "300"]))
    assert result["global_step"] == 300
