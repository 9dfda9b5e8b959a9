"""Shared set-up of the hostile-input suite: every case runs in a child process (see _runner.py)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
