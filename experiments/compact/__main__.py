"""`python -m experiments.compact`."""

from absl import app

from experiments.compact import cli

if __name__ == "__main__":
    cli.define_flags()
    app.run(cli.main)
