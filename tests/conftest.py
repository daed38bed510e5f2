import os
import sys

# Make the repo root importable (`import multigoal_env`) when running `python -m pytest tests`.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
