"""Read models built from topics: the runner, row changes, freshness waits."""
