"""The plumbing around a training run, shared by sac_continuous.py, mede_continuous.py and
diayn_continuous.py, as CleanRL keeps its plumbing in `cleanrl_utils`.

Nothing here is an algorithm, and nothing scores a policy (evaluation.py does). Copy an algorithm
script to change the algorithm (`cp mede_continuous.py my_mede.py`): the copy uses this package as
it is and names its runs and checkpoints after its own file (`my_mede`). One module per reason
to change:

- `cli`: the command line: the run's own flags and their checks, bad input as one line and the
  exit codes (also sweep.py's and plot.py's), `--resume` with the checkpoint's flags as defaults;
- `files`: files that are never half-written (atomic writes) or overwritten, one writer per run directory;
- `checkpoint`: what a checkpoint holds (the agent, every random state, each environment) and how
  a checkpoint or model file loads on any device;
- `device`: CPU or CUDA, float32 or bf16, threads, and the update captured as a CUDA graph;
- `progress`: the progress line, its rate and its ETA;
- `run`: one run's life: its directory and seeds, the loop's context (signals, NaN guard,
  logging, checkpoints, the held-out measure) and what it leaves behind (model file, eval.json, GIFs).

Importing this package imports none of them: sweep.py and plot.py take `cli` and `files` alone.
"""
