"""The page at `/` to try the service in a browser: a client of the public API and nothing else."""
