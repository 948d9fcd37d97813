"""`python -m benchmarks.zoo [--models=a,b] [--output=BENCHMARKS.md] [--json=FILE]`."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import json  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from benchmarks.zoo import architectures  # noqa: E402
from benchmarks.zoo import matrix  # noqa: E402
from benchmarks.zoo import steps  # noqa: E402

flags.DEFINE_list(
    "models",
    list(architectures.DEFAULT_MODELS),
    f"Architectures to run, from {','.join(architectures.ARCHITECTURES)}.",
)
flags.DEFINE_string(
    "output",
    "BENCHMARKS.md",
    "Markdown file whose model-zoo section is replaced (created if missing); "
    "empty: print only.",
)
flags.DEFINE_string("json", None, "Also write the matrix as JSON to this file.")
flags.DEFINE_string(
    "work-dir", None, "Keep the rows' models and artifacts here (default: deleted)."
)
flags.DEFINE_integer("epochs", steps.EPOCHS, "Training and distillation epochs.")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        sys.stderr.write(f"benchmarks.zoo: error: unexpected arguments {argv[1:]}\n")
        sys.exit(2)
    try:
        names = matrix.check_models(FLAGS.models)
        if FLAGS.epochs < 1:
            raise ValueError(
                f"`--epochs` must be at least 1. Received: --epochs={FLAGS.epochs}"
            )
        for flag in ("output", "json"):
            value = getattr(FLAGS, flag)
            folder = os.path.dirname(os.path.abspath(value)) if value else None
            if folder and not os.path.isdir(folder):
                raise ValueError(
                    f"`--{flag}` must be in an existing folder. "
                    f"Received: --{flag}={value[:120]}"
                )
    except ValueError as error:
        sys.stderr.write(f"benchmarks.zoo: error: {error}\n")
        sys.exit(2)
    from export import cli

    cli.quiet_tensorflow()
    command = "python -m benchmarks.zoo " + " ".join(
        shlex.quote(a) for a in sys.argv[1:]
    )

    def write(result):
        section = matrix.render_matrix(result, command.strip())
        if FLAGS.output:
            matrix.write_section(FLAGS.output, section)
        if FLAGS.json:
            with open(FLAGS.json, "w", encoding="utf-8") as handle:
                json.dump(result, handle, indent=2)
        return section

    result = matrix.run_zoo(
        names,
        work_dir=FLAGS["work-dir"].value,
        epochs=FLAGS.epochs,
        log=lambda line: print(line, file=sys.stderr, flush=True),
        on_row=write,
    )
    print(write(result))
    failed = any(
        not steps.is_allowed(cell, row["cells"], name, step)
        for name, row in result["rows"].items()
        for step, cell in row["cells"].items()
    )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    app.run(main)
