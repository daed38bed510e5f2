"""sweep.py with a real local Ray (started and stopped by each sweep, a subprocess here), on
MultiGoal-v0 with tiny networks: a sweep and its Table 1, a trial killed mid-run that Ray runs
again from its checkpoint (and a trial with bad input that it does not), a rerun that starts
nothing, and bad input of the sweep's own."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest

ray = pytest.importorskip("ray")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--hidden-dim", "16", "--learning-starts", "100", "--eval-episodes", "1"]
GRID = ["--env-ids", "MultiGoal-v0", "--seeds", "1", "--num-cpus", "2"]


def sweep(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "sweep.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory):
    """SAC and MEDE, one seed, 300 steps each: (the sweep's arguments, its directory, the result)."""
    directory = tmp_path_factory.mktemp("sweep") / "two"
    args = ["--scripts", "sac_continuous.py", "mede_continuous.py", *GRID, "--dir", str(directory),
            "--", *TINY, "--total-timesteps", "300"]
    return args, directory, sweep(*args)


def started(stdout: str) -> list[str]:
    return re.findall(r"^\[[\d:]+\] (?:start|retry) +(\S+)", stdout, re.M)


def test_a_sweep_runs_every_trial_and_writes_table_1(finished_sweep):
    _, directory, result = finished_sweep
    assert result.returncode == 0, result.stdout + result.stderr
    runs = sorted(p.name for p in directory.iterdir() if p.is_dir() and p.name != "logs")
    assert [name.split("__")[0] for name in runs] == ["mede_continuous", "sac_continuous"]
    assert sorted(started(result.stdout)) == runs and "done 2/2" in result.stdout
    for name in runs:
        assert (directory / name / "eval.json").exists()
        log = (directory / "logs" / f"{name}.log").read_text()
        assert log.startswith("=== attempt 1 on ") and "--threads 1 --checkpoint-every 10000" in log
        assert "=== exit code 0 (done)" in log
    table = (directory / "table1.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| MultiGoal-v0")]
    assert [row.split(" | ")[1] for row in rows] == ["MEDE", "SAC"]
    assert all("| 1 seed | 300 |" in row for row in rows)  # one seed, 300 steps
    assert "| MultiGoal-v0 | MEDE |" in result.stdout  # and printed


def test_a_rerun_of_a_finished_sweep_starts_no_trial(finished_sweep):
    args, directory, _ = finished_sweep
    evals = {path: path.stat().st_mtime_ns for path in directory.glob("*/eval.json")}
    assert len(evals) == 2
    result = sweep(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 finished earlier (skipped), 0 to run" in result.stdout
    assert started(result.stdout) == [] and "Ray:" not in result.stdout  # not even Ray was started
    assert {path: path.stat().st_mtime_ns for path in directory.glob("*/eval.json")} == evals
    assert "| MultiGoal-v0 | SAC |" in result.stdout


def script_pids(run_dir) -> list[int]:
    """The training script writing into `run_dir` (a grandchild of the sweep, under a Ray worker)."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().decode().split("\0")
        except OSError:  # gone meanwhile
            continue
        if "--run-dir" in argv and str(run_dir) in argv:
            pids.append(int(pid))
    return pids


def test_a_killed_trial_is_retried_from_its_checkpoint_and_bad_input_is_not_retried(tmp_path):
    directory = tmp_path / "killed"
    # MEDE trains 1200 steps, checkpointing every 200; SAC has no --num-z and fails with exit code 2.
    process = subprocess.Popen([sys.executable, "sweep.py", "--scripts", "mede_continuous.py", "sac_continuous.py",
                                *GRID, "--dir", str(directory), "--checkpoint-every", "200", "--",
                                *TINY, "--num-z", "2", "--disc-hidden-dim", "16", "--total-timesteps", "1200"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 600
        while not list(directory.glob("mede_continuous__*/checkpoint.pt")):
            assert process.poll() is None and time.time() < deadline, "the MEDE trial wrote no checkpoint"
            time.sleep(0.2)
        (run_dir,) = directory.glob("mede_continuous__*")
        (pid,) = script_pids(run_dir)
        os.kill(pid, signal.SIGKILL)
        stdout, stderr = process.communicate(timeout=900)
    finally:
        process.kill()
    assert process.returncode == 1, stdout + stderr  # SAC failed for good

    log = (directory / "logs" / f"{run_dir.name}.log").read_text()
    assert "=== killed by SIGKILL" in log
    assert "=== attempt 2 on " in log and f"--resume {run_dir}" in log
    step = int(re.search(rf"{run_dir.name} \| .*, resuming at step (\d+)", log).group(1))
    assert 200 <= step < 1200
    assert (run_dir / "eval.json").exists() and "=== exit code 0 (done)" in log
    assert re.search(rf"ended +{run_dir.name} on attempt 1: killed by SIGKILL; Ray retries it", stdout)
    assert re.search(rf"retry +{run_dir.name} \(attempt 2 of 4, resuming from its checkpoint\)", stdout)
    assert re.search(rf"finished {run_dir.name}: .* - done \d/2", stdout)

    (sac_log,) = (directory / "logs").glob("sac_continuous__*.log")
    assert sac_log.read_text().count("=== attempt") == 1  # exit code 2: not retried
    assert re.search(r"FAILED +sac_continuous__\S+: bad input: Unrecognized options: --num-z.*not retried", stdout)
    assert "1 trial(s) failed for good" in stdout
    assert "| MultiGoal-v0 | MEDE | 2 | 1 seed | 1200 |" in (directory / "table1.md").read_text()


@pytest.mark.parametrize("args, message", [
    (["--scripts", "nope.py", *GRID], "unknown script nope.py"),
    (["--scripts", "mede_continuous.py", "--env-ids", "MultiGoal-v0"], "the following arguments are required: --seeds"),
    (["--scripts", "mede_continuous.py", *GRID, "--num-z", "2"],
     "unrecognized arguments: --num-z 2 (flags for the scripts go after --)"),
    (["--scripts", "mede_continuous.py", *GRID, "--", "--seed", "3"], "--seed after -- is set by the sweep"),
    (["--scripts", "mede_continuous.py", *GRID, "--", "--eval-episodes=0"],
     "--eval-episodes after -- must be positive"),
])
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, args, message):
    result = sweep(*args, "--dir", str(tmp_path / "s"))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [result.stderr.strip()] and result.stderr.startswith("sweep.py: error: ")
    assert message in result.stderr
    assert not (tmp_path / "s").exists()


def test_without_ray_the_sweep_says_how_to_install_it(tmp_path):
    hide_ray = ("import runpy, sys; sys.modules['ray'] = None; sys.argv[0] = 'sweep.py'; "
                "runpy.run_path('sweep.py', run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", hide_ray, "--scripts", "mede_continuous.py", *GRID,
                             "--dir", str(tmp_path / "s")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr == "sweep.py: error: Ray is not installed: pip install -r requirements-sweep.txt\n"


def test_the_speed_line_sums_the_latest_rate_of_every_running_trial(tmp_path):
    """Several trials on one GPU: what the GPU does is their sum, from each one's latest progress line."""
    sys.path.insert(0, ROOT)
    import sweep as sweep_module
    logs = {"a": ["=== attempt 1 on host", "step 400/9000 (4%) | 5000 SPS | return - | ETA 0:00:02",  # warm-up
                  "learning at 300 steps/s: the remaining 8000 steps take about 0:00:27 (h:mm:ss), done around Fri 10:00",
                  "step 1000/9000 (11%) | 310 SPS | return -5.0 | ETA 0:00:30",
                  "step 2000/9000 (22%) | 420 SPS | return -3.0 | ETA 0:00:20"],
            "b": ["=== attempt 1 on host", "learning at 90 steps/s: ...", "step 500/9000 (6%) | 50 SPS | return -",
                  "=== exit code 143", "=== attempt 2 on host", "learning at 95 steps/s: ...",
                  "step 900/9000 (10%) | 95 SPS | return - | ETA 0:01:30"],
            "c": ["=== attempt 1 on host", "step 300/9000 (3%) | 4000 SPS | return - | ETA 0:00:02"]}  # warming up
    trials = []
    for name, lines in logs.items():
        (tmp_path / f"{name}.log").write_text("\n".join(lines) + "\n")
        trials.append(sweep_module.Trial("x.py", "MultiGoal-v0", 1, (), str(tmp_path / name),
                                         str(tmp_path / f"{name}.log")))
    line = sweep_module.summed_rate(trials)
    assert "3 trial(s) running, 515 environment steps/s summed over the 2 that learn (each: 420, 95, -;" in line
