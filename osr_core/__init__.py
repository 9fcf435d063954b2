"""Shared code for the MNIST open-set recognition pipeline.

Modules, one job each: ``cli`` (flags, seeding, devices, exit codes), ``io`` (atomic files,
checkpoints, output folders), ``data`` (obtaining and verifying data sets), ``images`` (reading
arbitrary image folders), ``models`` (the network), ``scores`` (unknown-ness scores),
``calibration`` (per-class thresholds), ``metrics`` and ``plots``.
"""
