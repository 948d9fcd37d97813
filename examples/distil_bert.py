"""Distil a BERT text classifier (keras_hub) from 4 layers into 1, then ship it.

    pip install 'kdkeras[text]'
    python -m examples.distil_bert --output-dir bert/

Builds both classifiers from configs (`keras_hub.models.BertBackbone`, no
preset, no tokenizer: the inputs are token ids), trains the 4-layer teacher
on a synthetic task that needs attention (the class is the keyword, among
three, that the sequence holds), distils the 1-layer student
from it with `kdkeras.Distiller` (dict inputs `{token_ids, segment_ids,
padding_mask}`), and writes into `--output-dir`:

    teacher.keras, student.keras   the two classifiers
    test.npz                       held-out x_token_ids, x_segment_ids,
                                   x_padding_mask and y (the `.npz`
                                   convention of `export`)

The export commands (SavedModel, TFLite fp32 and dynamic int8, ONNX, the
report against the teacher) are in the README, "Distil a text classifier".
"""

import os
import sys

import numpy as np
from absl import app
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_string("output-dir", "bert", "Where the models and test.npz go.")
flags.DEFINE_integer("train-examples", 2048, "Training sequences.", lower_bound=64)
flags.DEFINE_integer("test-examples", 512, "Held-out sequences.", lower_bound=16)
flags.DEFINE_integer("epochs", 6, "Epochs of the teacher and of the student.")
flags.DEFINE_integer("hidden-dim", 32, "Hidden width of both models.")
flags.DEFINE_integer("teacher-layers", 4, "Transformer layers of the teacher.")
flags.DEFINE_integer("student-layers", 1, "Transformer layers of the student.")
flags.DEFINE_integer("seed", 0, "Seed of the data and the initial weights.")

VOCABULARY = 128
LENGTH = 16
KEYWORDS = (2, 3, 4)  # One keyword per class.


def classifier(num_layers, hidden_dim, seed):
    """A `BertTextClassifier` of `len(KEYWORDS)` classes from a config (random weights)."""
    import models

    return models.build_bert_classifier(
        num_layers=num_layers,
        num_classes=len(KEYWORDS),
        vocabulary_size=VOCABULARY,
        max_sequence_length=LENGTH,
        hidden_dim=hidden_dim,
        seed=seed,
    )


def synthetic_task(count, seed):
    """`(x, y)`: padded token sequences whose class is the keyword they hold.

    Each sequence starts with token 1 ([CLS]) and holds 6 to `LENGTH` tokens,
    then padding (id 0, mask 0); one to three of its tokens are its class's
    keyword, anywhere after the first, the others random non-keyword tokens.
    """
    rng = np.random.default_rng(seed)
    token_ids = rng.integers(len(KEYWORDS) + 2, VOCABULARY, (count, LENGTH))
    mask = np.zeros((count, LENGTH), np.int32)
    y = rng.integers(0, len(KEYWORDS), count)
    for row in range(count):
        used = int(rng.integers(6, LENGTH + 1))
        mask[row, :used] = 1
        planted = rng.permutation(np.arange(1, used))[: int(rng.integers(1, 4))]
        token_ids[row, planted] = KEYWORDS[y[row]]
    token_ids[:, 0] = 1
    x = {
        "token_ids": (token_ids * mask).astype(np.int32),
        "segment_ids": np.zeros((count, LENGTH), np.int32),
        "padding_mask": mask,
    }
    return x, y.astype(np.int64)


# Adam's learning rates: the 1-layer student stalls at 2 of the 3 classes at
# the teacher's rate (distilled or alone), and learns all 3 at 3e-3.
TEACHER_LEARNING_RATE = 1e-3
STUDENT_LEARNING_RATE = 3e-3


def compiled(model):
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(TEACHER_LEARNING_RATE),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=False,  # XLA would compile longer than these epochs take.
    )
    return model


def main(argv):
    del argv
    import keras

    import kdkeras

    output_dir = FLAGS["output-dir"].value
    os.makedirs(output_dir, exist_ok=True)
    hidden, epochs, seed = FLAGS["hidden-dim"].value, FLAGS.epochs, FLAGS.seed
    x_train, y_train = synthetic_task(FLAGS["train-examples"].value, seed)
    x_test, y_test = synthetic_task(FLAGS["test-examples"].value, seed + 1)

    teacher = compiled(classifier(FLAGS["teacher-layers"].value, hidden, seed))
    teacher.fit(x_train, y_train, batch_size=64, epochs=epochs, verbose=2)
    distiller = kdkeras.Distiller(
        student=classifier(FLAGS["student-layers"].value, hidden, seed + 1),
        teacher=teacher,
    )
    distiller.compile(
        optimizer=keras.optimizers.Adam(STUDENT_LEARNING_RATE),
        metrics=["accuracy"],
        student_loss_fn=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        alpha=0.1,
        temperature=4.0,
        jit_compile=False,
    )
    distiller.fit(x_train, y_train, batch_size=64, epochs=epochs, verbose=2)

    teacher.save(os.path.join(output_dir, "teacher.keras"))
    distiller.student.save(os.path.join(output_dir, "student.keras"))
    np.savez(
        os.path.join(output_dir, "test.npz"),
        **{f"x_{name}": array for name, array in x_test.items()},
        y=y_test,
    )
    for name, model in (("teacher", teacher), ("student", distiller.student)):
        logits = np.asarray(model.predict(x_test, batch_size=256, verbose=0))
        accuracy = float(np.mean(logits.argmax(axis=1) == y_test))
        sys.stdout.write(
            f"{name}: {model.count_params():,} parameters, test accuracy {accuracy:.4f}\n"
        )


if __name__ == "__main__":
    app.run(main)
