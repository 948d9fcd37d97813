"""The demo's export steps, each a CLI of this repository run as a process.

`quantize_int8` runs `python -m export.to_tflite --quantize int8 --measure`
on the distilled student and reads back its sidecar and latencies;
`sign_off_report` runs `python -m export.report`, teacher against student and
its quantised variants, releasing the one the budget chooses.
Nothing stale is read back: each removes its outputs before it runs.
"""

import json
import os
import re
import shutil
import subprocess
import sys


def run_cli(command, what):
    """Runs a CLI of this repository; returns (exit code, stdout)."""
    print("Running:", " ".join(command), flush=True)
    completed = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    sys.stdout.write(completed.stdout)
    if completed.returncode not in (0, 1):
        print(f"{what} failed with exit code {completed.returncode}")
    return completed.returncode, completed.stdout


def remove(*paths):
    for path in paths:
        if os.path.exists(path):
            os.remove(path)


def calibration_file(x_train, output_dir, calibration_examples):
    """Saves the int8 calibration images (the first training images); the path."""
    import numpy as np

    path = os.path.join(output_dir, "calibration_images.npy")
    np.save(path, x_train[:calibration_examples])
    return path


def quantize_int8(
    student_path,
    x_train,
    x_test,
    y_test,
    output_dir,
    calibration_examples,
    measure=True,
):
    """int8 TFLite of the student: its sidecar, and its p50s if `measure`."""
    import numpy as np

    calibration = calibration_file(x_train, output_dir, calibration_examples)
    labelled = os.path.join(output_dir, "test_data.npz")
    np.savez(labelled, x=x_test, y=y_test)
    output = os.path.join(output_dir, "student_int8.tflite")
    remove(output, output + ".json")  # nothing stale is read back below
    code, stdout = run_cli(
        [
            sys.executable,
            "-m",
            "export.to_tflite",
            student_path,
            f"--output={output}",
            "--quantize=int8",
            f"--representative-data={calibration}",
            f"--labelled-data={labelled}",
            "--overwrite",
        ]
        + (["--measure"] if measure else []),
        "export.to_tflite --quantize int8",
    )
    if code != 0 or not os.path.exists(output + ".json"):
        return None
    with open(output + ".json") as file:
        sidecar = json.load(file)
    # `--measure` prints "batch B: p50 X ms, ..." per batch size.
    p50 = {
        batch: float(ms)
        for batch, ms in re.findall(r"batch (\d+): p50 ([0-9.]+) ms", stdout)
    }
    return {"path": output, "sidecar": sidecar, "p50_ms": p50}


def _remove_release(release_dir):
    """Removes the release folder of an earlier run (it holds release.json)."""
    if os.path.isdir(release_dir) and os.path.exists(
        os.path.join(release_dir, "release.json")
    ):
        shutil.rmtree(release_dir)


def sign_off_report(teacher_path, student_path, output_dir, variants, calibration):
    """The sign-off report and the release; the report's JSON.

    `python -m export.report` measures the teacher against the student in
    every format and in the quantised `variants` (int8 calibrated on the
    images of `calibration`), and copies the variant `examples/budget.yaml`
    chooses into `<output_dir>/release` (with its sidecar and release.json).
    """
    report_dir = os.path.join(output_dir, "report")
    release_dir = os.path.join(output_dir, "release")
    budget = os.path.join(os.path.dirname(__file__), "budget.yaml")
    path = os.path.join(report_dir, "report.json")
    remove(path)  # nothing stale is read back below
    _remove_release(release_dir)
    command = [
        sys.executable,
        "-m",
        "export.report",
        f"--teacher={teacher_path}",
        f"--student={student_path}",
        f"--output-dir={report_dir}",
        f"--budget={budget}",
        f"--release-dir={release_dir}",
    ]
    if variants:
        command += [
            f"--variants={','.join(variants)}",
            f"--representative-data={calibration}",
        ]
    code, _ = run_cli(command, "export.report")
    if not os.path.exists(path):  # exit 3 (a format failed) still writes it
        return None
    with open(path) as file:
        report = json.load(file)
    report["exit_code"] = code
    print(f"Sign-off report: {report_dir}/report.md (and .html, .json)")
    return report
