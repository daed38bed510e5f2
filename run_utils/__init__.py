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
- `hardware`: CPU or CUDA, float32 or bf16, the CPU's allocator, and the update as CUDA graphs;
- `seeding`: every random generator of a run from its one --seed, in independent streams;
- `buffer`: the replay buffer, on the run's device;
- `progress`: the progress line, its rate and its ETA;
- `log`: what a run writes to TensorBoard;
- `outputs`: what a run leaves behind (model file, eval.json, GIFs);
- `run`: one run's life: its directory, the loop's context (signals, NaN guard, checkpoints, the
  held-out measure) and its end.

Importing this package imports none of them: sweep.py and plot.py take `cli` and `files` alone.
"""
