import os
import sys

# Make the repo root importable (`import multigoal_env`) when running `python -m pytest tests`.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# One thread for torch, here and in the scripts the tests start: the networks in the tests are
# tiny, and on a 2-core machine two threads per process slow everything down many times over as
# soon as another process (a training run, a second test worker) wants the CPU too.
os.environ["OMP_NUM_THREADS"] = "1"
