"""The benchmarks run on what the scripts are now: they wrap the scripts' own `main` and `Run`, so a renamed
hook breaks them, and on a GPU machine (benchmarks/device_check.sh) that would cost its scarce time."""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_benchmark(*command: str) -> str:
    done = subprocess.run([sys.executable, *command], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_profile_step_times_every_phase_of_a_step_of_the_script():
    out = run_benchmark("benchmarks/profile_step.py", "--device", "cpu", "sac", "--warmup-steps", "100", "--steps", "20")
    assert "sac on cpu: 20 learning steps timed" in out
    phases = {line.rsplit(maxsplit=1)[0].strip(): float(line.rsplit(maxsplit=1)[1])
              for line in out.split("ms per step")[1].splitlines()[1:] if line.strip()}
    assert set(phases) == {"act (forward)", "update (with the gather)", "environment step", "store the step",
                           "draw a batch's rows", "NaN watch and logging", "progress and checkpoint",
                           "sum of the phases"}
    assert phases["update (with the gather)"] > 0 and phases["act (forward)"] > 0
    assert abs(sum(v for k, v in phases.items() if k != "sum of the phases") - phases["sum of the phases"]) < 0.01


def test_bench_prints_a_row_per_contender_with_its_rate():
    out = run_benchmark("benchmarks/bench.py", "sac", "--threads", "1", "--repeats", "1", "--warmup-steps", "100",
                        "--steps", "60", "--skip", "10")
    rows = [line for line in out.splitlines() if line.startswith("| sac |")]
    assert len(rows) == 1, out
    env_steps_per_s = float(rows[0].split("|")[6])
    assert 1 < env_steps_per_s < 10_000
