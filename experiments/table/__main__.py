"""`python -m experiments.table`."""

from absl import app

from experiments.table import cli

if __name__ == "__main__":
    cli.define_flags()
    app.run(cli.main)
