"""The official SDK kowabunga==0.58.0 in the tests (harness.py, child.py)."""
