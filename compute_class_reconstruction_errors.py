"""Stage 2: per-class score statistics on the validation split, and the thresholds they give.

Usage: python compute_class_reconstruction_errors.py [--score auto] [--rule quantile] [--target-acceptance 0.99]

Writes artifacts/reconstruction_errors.txt (read by every later stage; its header names the
checkpoint's SHA-256 and the decision, and carries each part's rank normalisation) and calibration.json beside
it. Only the checkpoint's validation split is used. With `--score auto` (the default) the decision is chosen by
selection.py's rule: a near part by the near-digit signal of leave-classes-out models (trained like the checkpoint
without some of its classes, kept in --folds-dir and reused while their recipe matches), then far gates beside it
(pixel reconstruction, feature distance), under floors of far families and of digits as users send them, all made
from the validation digits; calibration.json holds the folds, every candidate's figures and the rule.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from osr_core import cli
from osr_core.calibration import CALIBRATION_JSON, DEFAULT_RULE_PARAM, RULES
from osr_core.io import StageOutputs
from osr_core.leave_out import DEFAULT, FoldScheme
from osr_core.pipeline import calibrate_on_validation, load_trained, write_calibration
from osr_core.gates import AUTO, parse_gates
from osr_core.scores import COMPONENTS, FUSABLE

log = logging.getLogger("osr")


def score_name(text: str) -> str:
    if text == AUTO:
        return text
    try:
        parse_gates(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--score", type=score_name, default=AUTO,
                   help="decision: auto (chosen on validation data: a near part and the gates beside it), a component "
                        f"({', '.join(COMPONENTS)}), mean(a,b,...) / mean+(a,b,...) of {', '.join(FUSABLE)}, or gates "
                        "max(near,gate-offset,...) such as max(mean+(energy,mahalanobis),pixel_recon-1.5) "
                        "(default: %(default)s)")
    p.add_argument("--rule", choices=RULES, default="quantile", help="threshold rule (default: %(default)s)")
    p.add_argument("--rule-param", type=cli.number(float, 0, low_open=True), default=None,
                   help="k of mean-std (default 2.326) or mean-factor (default 2.0); quantile uses --target-acceptance")
    p.add_argument("--target-acceptance", type=cli.number(float, 0.5, 0.9999), default=0.99,
                   help="fraction of validation knowns to accept (default: %(default)s)")
    p.add_argument("--out", default=cli.DEFAULT_THRESHOLDS, help="thresholds file; calibration.json goes beside it")
    p.add_argument("--folds-dir", default=None,
                   help="where the leave-classes-out models are kept and reused (default: leave_out/ beside --out)")
    p.add_argument("--train-judge", action="store_true",
                   help="train the leave-classes-out models even where a judgement of the checkpoint's recipe is "
                        "shipped (osr_core/judgements/)")
    p.add_argument("--fold-size", type=cli.number(int, 1), default=DEFAULT.size,
                   help="classes each leave-classes-out model is trained without (default: %(default)s)")
    p.add_argument("--fold-epochs", type=cli.number(int, 0), default=DEFAULT.epochs or 0,
                   help="epochs of each leave-classes-out model, at most the checkpoint's (default: %(default)s: the "
                        "checkpoint's own)")
    p.add_argument("--fold-images", type=cli.number(int, 0), default=DEFAULT.images or 0,
                   help="training images of each leave-classes-out model, at most the checkpoint's (default: "
                        "%(default)s: as many as the checkpoint)")
    cli.add_common_flags(p, "data_dir", "checkpoint", "device", "seed", "batch_size")
    return p


def run(args: argparse.Namespace) -> int:
    if not 0.5 <= args.target_acceptance < 1:
        raise cli.UserError("--target-acceptance must lie in [0.5, 1)")
    trained = load_trained(args.checkpoint, cli.resolve_device(args.device))
    param = args.rule_param if args.rule_param is not None else DEFAULT_RULE_PARAM[args.rule]
    out = Path(args.out)
    folds_dir = Path(args.folds_dir) if args.folds_dir else out.parent / "leave_out"
    scheme = FoldScheme(args.fold_size, args.fold_epochs or None, args.fold_images or None)
    with StageOutputs(out.parent) as outputs:  # from here on, the folder is this run's
        cal = calibrate_on_validation(trained, args.data_dir, args.score, args.rule, param, args.target_acceptance,
                                      args.batch_size, cli.progress_enabled(args.quiet), seed=args.seed,
                                      folds_dir=folds_dir, scheme=scheme,
                                      use_shipped=not args.train_judge)
        text = write_calibration(outputs, out.name, cal)
        outputs.finish()
    if not args.quiet:
        print(text, end="")
    if cal.selection:
        row = cal.selection["candidates"][cal.score]
        near = f"leave-classes-out AUROC {row['leave_classes_out']:.4f}, " if "leave_classes_out" in row else ""
        log.info("decision %s: %sfar families >= %.4f, users' digits %.2f%% accepted; rule and every candidate in %s",
                 cal.score, near, row["far_min"], 100 * row["acceptance"], out.parent / CALIBRATION_JSON)
    log.info("%d validation images; %.2f%% accepted at these thresholds; wrote %s",
             sum(c.n for c in cal.classes), 100 * cal.validation_acceptance, out)
    return 0


def main(argv=None) -> int:
    return cli.run(run, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
