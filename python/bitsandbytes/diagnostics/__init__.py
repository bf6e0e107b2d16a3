"""``python -m bitsandbytes``: the environment report and self-tests (imported only by it)."""
