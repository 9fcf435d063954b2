"""Open-set recognition for handwritten digits: which digit, or unknown.

From Python, the front door is ``OpenSetRecognizer`` (``osr_core.api``)::

    from osr_core import OpenSetRecognizer
    result = OpenSetRecognizer.load("artifacts/model.pt", "artifacts/reconstruction_errors.txt").predict(images)

Modules, one job each: ``cli`` (flags, seeding, devices, exit codes), ``io`` (atomic files, checkpoints,
output folders), ``data`` (obtaining and verifying data sets), ``images`` (reading images from files, folders
and arrays), ``mnist_style`` (MNIST's own normalisation), ``letters`` and ``characters`` (generated unknowns),
``outliers`` (unknowns made from digits: training negatives and the validation proxy), ``models`` (the
networks), ``training``, ``distributed`` (torchrun), ``scores`` (unknown-ness scores), ``selection``
(choosing the decision score), ``calibration`` (per-class thresholds), ``pipeline`` (what stages share),
``evaluation``, ``metrics``, ``plots``, ``report``, ``api``.
"""


def __getattr__(name: str):
    # Imported on first use, so that `import osr_core.cli` stays light.
    if name in ("OpenSetRecognizer", "Predictions"):
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'osr_core' has no attribute {name!r}")
