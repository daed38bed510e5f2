"""What a user with a GPU gets (issue 36): every script trains and evaluates on CUDA, in float32 and
bf16, and the files of a CUDA run load, resume and plot in a process that sees no GPU. Every test
here needs CUDA and is skipped without it; the rest of the suite asks for the CPU where it checks
CPU behaviour (bit-exact resume, saved-model equality), so the whole suite runs with a GPU visible."""

import json
import math
import os
import subprocess
import sys

import pytest
import torch

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--env-id", "MultiGoal-v0", "--hidden-dim", "32", "--learning-starts", "100", "--eval-episodes", "2",
        "--total-timesteps", "300"]
NO_GPU = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # a process of this machine that sees no GPU


def run(script: str, *flags: str, cwd, env=None) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, os.path.join(ROOT, script), *flags], cwd=cwd, capture_output=True,
                          text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr
    return done


def tensors_in(value) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in tensors_in(v)]
    return []


@pytest.mark.parametrize("bf16", [False, True], ids=["float32", "bf16"])
@pytest.mark.parametrize("script, flags", [
    ("sac_continuous.py", []),
    ("mede_continuous.py", ["--num-z", "3", "--measure-every", "200", "--measure-steps", "50"]),
    ("mede_continuous.py", ["--num-z", "2", "--separate-networks"]),
    ("diayn_continuous.py", ["--num-z", "3", "--measure-every", "200", "--measure-steps", "50"]),
], ids=["sac", "mede", "mede-separate", "diayn"])
def test_every_script_trains_and_evaluates_on_cuda(tmp_path, script, flags, bf16):
    done = run(script, *TINY, *flags, *(["--bf16"] if bf16 else []), "--run-dir", "run", cwd=tmp_path)
    precision = "bfloat16" if bf16 else "float32"
    assert f"| cuda, {precision} |" in done.stdout.splitlines()[0]
    result = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert result["precision"] == precision and result["global_step"] == 300
    assert all(math.isfinite(r) for entry in result["per_z"] for r in entry["returns"])


def test_a_cuda_run_loads_resumes_and_plots_in_a_process_that_sees_no_gpu(tmp_path):
    flags = [*TINY, "--num-z", "3", "--save-model", "--checkpoint-every", "300", "--run-dir", "run"]
    run("mede_continuous.py", *flags, cwd=tmp_path)
    run_dir = tmp_path / "run"
    for name in ("checkpoint.pt", "mede_continuous.pt"):  # saved on the CPU: torch.load needs no map_location
        found = tensors_in(torch.load(run_dir / name, weights_only=False))
        assert found and all(t.device.type == "cpu" for t in found), name
    state = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    assert isinstance(state["rng"]["cuda"], torch.Tensor), "the state of the run's own GPU, not a list of all"

    plotted = run("plot.py", "goals", str(run_dir / "mede_continuous.pt"), "--episodes", "1", cwd=tmp_path, env=NO_GPU)
    assert "goals reached in 1 stochastic episodes per policy" in plotted.stdout
    resumed = run("mede_continuous.py", "--resume", str(run_dir), "--total-timesteps", "400", cwd=tmp_path, env=NO_GPU)
    assert "resuming at step 300" in resumed.stdout and "cpu (no CUDA GPU found)" in resumed.stdout.splitlines()[0]
    assert "the checkpoint's CUDA random state is skipped" in resumed.stderr
    assert json.loads((run_dir / "eval.json").read_text())["global_step"] == 400


def test_a_finished_cuda_run_resumed_on_a_cpu_says_it_is_finished(tmp_path):
    run("sac_continuous.py", *TINY, "--save-model", "--checkpoint-every", "300", "--run-dir", "run", cwd=tmp_path)
    before = sorted(p.name for p in (tmp_path / "run").iterdir())
    again = run("sac_continuous.py", "--resume", "run", cwd=tmp_path, env=NO_GPU)
    assert "already finished at step 300" in again.stdout and "Traceback" not in again.stderr
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == before
