"""`python -m experiments.less_data`."""

import functools

from absl import app

from experiments import cli as experiments_cli
from experiments.less_data import cli

if __name__ == "__main__":
    cli.define_flags()
    app.run(
        functools.partial(
            experiments_cli.main, read_settings=cli.read_settings, run=cli.write_report
        )
    )
