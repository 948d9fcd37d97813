"""The demo's export steps, each a CLI of this repository run as a process.

`quantize_int8` runs `python -m export.to_tflite --quantize int8 --measure`
on the distilled student and reads back its sidecar and latencies;
`sign_off_report` runs `python -m export.report`, teacher against student.
Nothing stale is read back: each removes its outputs before it runs.
"""

import json
import os
import re
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


def quantize_int8(
    student_path, x_train, x_test, y_test, output_dir, calibration_examples
):
    """int8 TFLite of the student: its sidecar plus the measured p50s."""
    import numpy as np

    calibration = os.path.join(output_dir, "calibration_images.npy")
    np.save(calibration, x_train[:calibration_examples])
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
            "--measure",
        ],
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


def sign_off_report(teacher_path, student_path, output_dir):
    """The sign-off report, teacher against the fp32 student; its JSON."""
    report_dir = os.path.join(output_dir, "report")
    budget = os.path.join(os.path.dirname(__file__), "budget.yaml")
    path = os.path.join(report_dir, "report.json")
    remove(path)  # nothing stale is read back below
    code, _ = run_cli(
        [
            sys.executable,
            "-m",
            "export.report",
            f"--teacher={teacher_path}",
            f"--student={student_path}",
            f"--output-dir={report_dir}",
            f"--budget={budget}",
        ],
        "export.report",
    )
    if not os.path.exists(path):  # exit 3 (a format failed) still writes it
        return None
    with open(path) as file:
        report = json.load(file)
    report["exit_code"] = code
    print(f"Sign-off report: {report_dir}/report.md (and .html, .json)")
    return report
