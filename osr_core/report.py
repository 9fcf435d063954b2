"""Renders metrics.json as report.md: tables, definitions, pictures, and published numbers beside ours."""
from __future__ import annotations

from typing import Any

DEFINITIONS = """\
## How each number is defined
All detection metrics use the decision **margin** = score - threshold of the predicted class (higher = more
unknown); a sample is rejected as unknown when its margin is above 0. Knowns are the MNIST test digits of the
checkpoint's known classes; each unknown set is measured against all of them.

- **Closed-set accuracy**: fraction of known test digits whose predicted class is right (rejection ignored).
- **AUROC**: area under the ROC curve, unknowns as positives (the value of scikit-learn's `roc_auc_score`); 95% interval from
  {n_boot} bootstrap resamples of knowns and unknowns.
- **AUPR-in / AUPR-out**: average precision with knowns / unknowns as the positive class.
- **FPR95**: fraction of unknowns accepted at the threshold that accepts 95% of knowns (ODIN's definition).
- **Named a digit** (the operating point: what a user sees): the share of an unknown set answered as a digit at
  the calibrated thresholds, 1 - the *detection rate*. *Rejected by*: the share rejected for each reason, the
  evidence of the part of the decision that was the largest (`far from every class`: feature distance;
  `unlike any digit`: pixel reconstruction; `between digits`: the classifier's uncertainty or a fusion built for
  unknowns that look like digits), or `blank` (nothing written). *False-alarm rate*: knowns rejected.
- **Macro-F1**: F1 averaged over the N known classes plus "unknown", on a 1:1 mix (as many knowns as unknowns,
  drawn at random with the run's seed): the CROSR protocol.
- **OSCR**: area under the curve of correct-classification rate of knowns (right class and accepted) against
  the fraction of unknowns accepted, as the acceptance threshold sweeps (Dhamija et al. 2018).
- **Seeds' figures**: *MNIST accuracy* = knowns classified right and accepted; *OOD accuracy* = unknowns
  rejected; *total accuracy* = both counted together over all knowns plus all unknowns of the set.
- **Ablation**: AUROC of every candidate near part: each component alone (oriented so higher = more unknown), and
  for every subset of two or more of pixel reconstruction, feature reconstruction, energy and Mahalanobis distance
  the one-sided mean `mean+(...)` of their rank-normalised values (each component mapped to a standard normal
  through its quantiles on the validation digits, each negative part dropped, so a component can add evidence of
  unknown-ness, never cancel another's), beside the decision margin.
- **Decision**: `max(near, gate-offset, ...)`: each part rank-normalised on the validation digits, less its
  offset; the largest decides, so each gate can reject an image alone. With `--score auto` (the default) stage 2
  chooses it by a rule on validation data alone (the section "How the decision was chosen"): the near part by
  the leave-classes-out AUROC (validation digits of classes that auxiliary models were trained without), then the
  gates beside it under floors of far families and of validation digits as users send them. No reported set
  plays any part; the `validation_proxy_*` rows are therefore marked seen.
"""

# Published figures, each with its source and how its protocol compares to ours.
PUBLISHED_CROSR_F1 = [
    ("CROSR (Yoshihashi et al., CVPR 2019)", {"omniglot": 0.793, "mnist_noise": 0.827, "noise": 0.826}),
    ("OpenMax, as reported by CROSR", {"omniglot": 0.680, "mnist_noise": 0.720, "noise": 0.890}),
]
PUBLISHED_UNSEEN_DIGITS_AUROC = [
    ("OpenMax (Bendale & Boult 2016), as reported by Neal et al. 2018", 0.981),
    ("G-OpenMax (Ge et al. 2017), as reported by Neal et al. 2018", 0.984),
    ("OSRCI (Neal et al., ECCV 2018)", 0.988),
    ("C2AE (Oza & Patel, CVPR 2019)", 0.989),
    ("CROSR (Yoshihashi et al., CVPR 2019)", "0.991-0.992"),
    ("RPL (Chen et al., ECCV 2020)", 0.996),
    ("Closed-set classifier is all you need (Vaze et al., ICLR 2022)", 0.993),
    ("OpenGAN (Kong & Ramanan, ICCV 2021)", 0.999),
]
SEED_FIGURES = [
    ("seed project A (figures quoted in issue #3)", {"baseline accuracy": "95.93%", "MNIST accuracy": "95.71%",
                                                    "OOD accuracy": "90.80%", "total accuracy": "95.26%",
                                                    "final OSR score": "97.71%"}),
    ("seed project B (figures quoted in issue #3)", {"baseline accuracy": "98.46%", "MNIST accuracy": "96.43%",
                                                    "OOD accuracy": "93.30%", "total accuracy": "96.15%"}),
]


def pct(x: Any) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def num(x: Any, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def reasons_text(shares: dict) -> str:
    return "; ".join(f"{r} {pct(v)}" for r, v in sorted(shares.items(), key=lambda kv: -kv[1])) or "-"


def sets_table(sets: dict) -> str:
    """Every unknown set, led by what a user sees: the share named a digit at the thresholds, and why the rest
    were rejected; then the threshold-free figures."""
    rows = []
    for name, s in sets.items():
        if not s["available"]:
            rows.append([f"{name}", "unavailable: " + s["reason"].replace("|", "/")] + ["-"] * 10)
            continue
        seen = " (seen in training/tuning: not unseen)" if s["seen_in_training"] else ""
        ci = s["auroc_ci95"]
        rows.append([f"{name}{seen}", str(s["n"]), f"**{pct(s['named_a_digit'])}**", reasons_text(s["rejected_by"]),
                     f"{num(s['auroc'])} [{num(ci[0])}, {num(ci[1])}]", num(s["aupr_in"]), num(s["aupr_out"]),
                     pct(s["fpr95"]), num(s["macro_f1"], 3), num(s["oscr"]), pct(s["total_accuracy"])])
    return table(["unknown set", "n", "named a digit", "rejected by", "AUROC [95% CI]", "AUPR-in", "AUPR-out", "FPR95",
                  "macro-F1", "OSCR", "total acc."], rows)


def ablation_table(sets: dict) -> str:
    available = {n: s for n, s in sets.items() if s["available"]}
    if not available:
        return "_no unknown set available_"
    components = list(next(iter(available.values()))["ablation"])
    rows = [[c] + [num(s["ablation"][c]) for s in available.values()] for c in components]
    return table(["score (AUROC)"] + list(available), rows)


def num6(x: float) -> str:
    return f"{x:.6f}"  # enough digits that a value just under a 0.9999 target never shows as meeting it


# The project's quality targets (issues 9, 15, 16, 23 and 24): (label, where the value is in metrics.json, test,
# target as text, format).
named = lambda v: pct(v)
TARGETS = [
    ("closed-set accuracy, MNIST test", ("closed_set_accuracy",), lambda v: v >= 0.996, ">= 99.6%", pct),
    ("false-alarm rate at the calibrated thresholds", ("false_alarm_rate",), lambda v: 0.007 <= v <= 0.013,
     "1.0% +- 0.3", pct),
    ("noise named a digit", ("sets", "noise", "named_a_digit"), lambda v: v == 0, "0%", named),
    ("AUROC, noise", ("sets", "noise", "auroc"), lambda v: v >= 0.9999, ">= 0.9999", num6),
    ("MNIST-Noise named a digit", ("sets", "mnist_noise", "named_a_digit"), lambda v: v == 0, "0%", named),
    ("AUROC, MNIST-Noise", ("sets", "mnist_noise", "auroc"), lambda v: v >= 0.9999, ">= 0.9999", num6),
    ("Fashion-MNIST named a digit", ("sets", "fashion_mnist", "named_a_digit"), lambda v: v <= 0.01, "<= 1%", named),
    ("AUROC, Fashion-MNIST", ("sets", "fashion_mnist", "auroc"), lambda v: v >= 0.999, ">= 0.999", num6),
    ("natural-image crops named a digit", ("sets", "natural_crops", "named_a_digit"), lambda v: v <= 0.005, "<= 0.5%",
     named),
    ("AUROC, natural-image crops", ("sets", "natural_crops", "auroc"), lambda v: v >= 0.999, ">= 0.999", num6),
    ("stroke-drawn characters detected", ("sets", "characters", "detection_rate"), lambda v: v >= 0.90,
     ">= 90% (85% in issue 23)", pct),
    ("AUROC, stroke-drawn characters", ("sets", "characters", "auroc"), lambda v: v >= 0.993, ">= 0.993", num6),
    ("letters without digit-like glyphs detected", ("sets", "letters_no_digit_like", "detection_rate"),
     lambda v: v >= 0.90, ">= 90% (80% in issue 23)", pct),
    ("AUROC, letters without digit-like glyphs", ("sets", "letters_no_digit_like", "auroc"), lambda v: v >= 0.995,
     ">= 0.995", num6),
    ("AUROC, letters, all", ("sets", "letters", "auroc"), lambda v: v >= 0.95, ">= 0.95", num6),
    ("macro-F1 (CROSR protocol), letters, all", ("sets", "letters", "macro_f1"), lambda v: v >= 0.90, ">= 0.90", num),
    ("AUROC, unseen-digit protocol, mean of 5 splits", ("unseen_digits", "auroc_mean"), lambda v: v >= 0.997,
     ">= 0.997", num6),
    ("AUROC, unseen-digit protocol, worst split", ("unseen_digits", "auroc_min"), lambda v: v >= 0.99, ">= 0.99", num6),
    ("scans of digits classified right (accepted or not)", ("covariate_shift", "scans", "accuracy"),
     lambda v: v >= 0.99, ">= 99%", pct),
    ("scans of digits rejected", ("covariate_shift", "scans", "rejection_rate"), lambda v: v <= 0.02, "<= 2%", pct),
    ("rotated digits (up to 30 degrees) rejected", ("covariate_shift", "rotation", "rejection_rate"),
     lambda v: v <= 0.05, "<= 5%", pct),
    ("images without a digit (no_digit) named a digit", ("sets", "no_digit", "named_a_digit"), lambda v: v <= 0.01,
     "<= 1%", named),
]


def lookup(m: dict, path: tuple[str, ...]):
    for key in path:
        m = m[key]
    return m


def targets_table(m: dict) -> str:
    rows = []
    for label, path, ok, target, fmt in TARGETS:
        try:
            value = lookup(m, path)
        except (KeyError, TypeError):
            rows.append([label, "not measured in this run", target, "-"])
            continue
        rows.append([label, fmt(value), target, "met" if ok(value) else "**missed**"])
    return table(["measure", "this run", "target", ""], rows)


def _validation_view(candidates: dict, name: str) -> str:
    """What the selection saw of a candidate: its near-digit AUROC and the floors it failed."""
    row = candidates.get(name)
    if not row:
        return "not a candidate of the selection"
    near = f"leave-classes-out {num(row['leave_classes_out'])}, " if "leave_classes_out" in row else ""
    failed = ", ".join(row["failed_floors"]) or "none"
    return f"{near}floors failed: {failed}"


def missed_target_notes(m: dict) -> str:
    """For each missed per-set AUROC target: the best ablation row on that set, and what the validation data (the
    only data the score was chosen on) said of that row and of the chosen score."""
    candidates = (m["calibration"].get("selection") or {}).get("candidates", {})
    chosen = m["calibration"]["score"]
    lines = []
    for _, path, ok, target, _ in TARGETS:
        if path[0] != "sets" or path[2] != "auroc":
            continue
        s = m["sets"].get(path[1], {})
        if not s.get("available") or ok(s["auroc"]):
            continue
        rows = {k: v for k, v in s["ablation"].items() if k != "decision_margin"}
        if not rows:
            continue
        best = max(rows, key=rows.get)
        line = f"- **{path[1]}**: the decision reaches {num6(s['auroc'])} (target {target}); "
        if rows[best] <= s["auroc"] or best == chosen:
            # The chosen score's ablation row can sit a little above the decision's AUROC: the decision adds each
            # image's class threshold, the ablation ranks the bare score.
            lines.append(line + f"no other score or fusion in the ablation does better (best `{best}`, {num6(rows[best])}).")
            continue
        line += f"`{best}` reaches {num6(rows[best])}"
        if candidates:
            line += (f"; on validation data it scored {_validation_view(candidates, best)}, the chosen `{chosen}` "
                     f"{_validation_view(candidates, chosen)}")
        lines.append(line + ".")
    letters = m["sets"].get("letters", {})
    if letters.get("available") and letters["macro_f1"] < 0.90:
        clean = m["sets"].get("letters_no_digit_like", {})
        best = max(m.get("baselines", {}).items(), key=lambda kv: kv[1]["sets"].get("letters", {}).get("macro_f1", 0),
                   default=None)
        line = (f"- **letters, macro-F1** {num(letters['macro_f1'], 3)}: at the calibrated thresholds "
                f"{pct(letters['detection_rate'])} of all letters are rejected")
        if clean.get("available"):
            line += f" ({pct(clean['detection_rate'])} of those not drawn like a digit)"
        line += "; every letter accepted as a digit costs both that digit's F1 and unknown's"
        if best:
            line += f". Best baseline: {best[0]}, {num(best[1]['sets']['letters']['macro_f1'], 3)}"
        lines.append(line + ".")
    ud = m.get("unseen_digits")
    if ud and ud["auroc_mean"] < 0.997 and all("ablation" in s for s in ud["splits"]):
        rows = {k: sum(s["ablation"][k] for s in ud["splits"]) / len(ud["splits"]) for k in ud["splits"][0]["ablation"]}
        best = max((k for k in rows if k != "decision_margin"), key=rows.get)
        lines.append(f"- **unseen digits**: mean AUROC {num6(ud['auroc_mean'])} over the splits "
                     f"({num(min(s['auroc'] for s in ud['splits']))} to {num(max(s['auroc'] for s in ud['splits']))}); "
                     f"the best ablation row, averaged over the splits, is `{best}` at {num6(rows[best])}.")
    return "\n".join(["Where a target is missed, what the measurements say:", *lines, ""]) if lines else ""


def baselines_table(m: dict) -> str:
    names = [n for n, s in m["sets"].items() if s["available"]]
    rows = [["**this model's decision** (`" + m["calibration"]["score"] + "`)", pct(m["false_alarm_rate"])]
            + [f"{num(m['sets'][n]['auroc'])} / {pct(m['sets'][n]['detection_rate'])} / {num(m['sets'][n]['macro_f1'], 3)}"
               for n in names]]
    for name, b in m.get("baselines", {}).items():
        rows.append([name, pct(b["false_alarm_rate"])] + [
            f"{num(b['sets'][n]['auroc'])} / {pct(b['sets'][n]['detection_rate'])} / {num(b['sets'][n]['macro_f1'], 3)}"
            for n in names])
    return table(["detector (AUROC / detection / macro-F1)", "false alarms"] + names, rows)


def comparisons_table(m: dict) -> str:
    names = [n for n, s in m["sets"].items() if s["available"] and not s["seen_in_training"]]
    cell = lambda s: f"{num(s['auroc'])} / {num(s['macro_f1'], 3)}" if s else "-"
    rows = [[f"this model (`{m.get('arch', 'cnn')}`, `{m['calibration']['score']}`)", pct(m["closed_set_accuracy"]),
             pct(m["false_alarm_rate"])] + [cell(m["sets"][n]) for n in names]]
    for name, c in m["comparisons"].items():
        if not c["available"]:
            rows.append([name, "not run: " + c["reason"]] + ["-"] * (len(names) + 1))
            continue
        rows.append([f"{name} (`{c['arch']}`, `{c['score']}`)", pct(c["closed_set_accuracy"]),
                     pct(c["false_alarm_rate"])] + [cell(c["sets"].get(n)) for n in names])
    return table(["model (AUROC / macro-F1)", "closed-set acc.", "false alarms"] + names, rows)


def pictures_section(sets: dict) -> str:
    lines = ["![ROC curves](roc.png)", "", "![t-SNE of encoder features](features_tsne.png) "
             "![PCA of encoder features](features_pca.png)", ""]
    for name, s in sets.items():
        if s["available"]:
            lines += [f"### {name}", f"{s['description']}", "",
                      f"![margins {name}](hist_{name}.png) ![confusion {name}](confusion_{name}.png)", "",
                      f"Most confidently rejected: ![rejected {name}](rejected_{name}.png)", "",
                      f"Slipped through as digits: ![slipped {name}](slipped_{name}.png)", ""]
    return "\n".join(lines)


def comparison(m: dict) -> str:
    sets = m["sets"]
    get = lambda n, k: sets[n][k] if n in sets and sets[n]["available"] else None
    lines = ["## Our numbers beside published ones", "",
             "### CROSR protocol: macro-F1 on a 1:1 mix of MNIST test and unknowns", ""]
    rows = [["this run", num(get("omniglot", "macro_f1"), 3), num(get("mnist_noise", "macro_f1"), 3),
             num(get("noise", "macro_f1"), 3), num(get("letters", "macro_f1"), 3),
             "similar: same sets where available, our own noise generation and training"]]
    rows += [[src, num(v["omniglot"], 3), num(v["mnist_noise"], 3), num(v["noise"], 3), "-", "published"]
             for src, v in PUBLISHED_CROSR_F1]
    lines += [table(["source", "Omniglot", "MNIST-Noise", "Noise", "letters", "protocol"], rows), ""]
    lines += ["### The seeds' figures (MNIST accuracy counts a digit right only if also accepted)", ""]
    ours = {name: s for name, s in sets.items() if s["available"] and not s["seen_in_training"]}
    rows = [[f"this run, {n}", pct(m["closed_set_accuracy"]), pct(s["mnist_accuracy"]), pct(s["ood_accuracy"]),
             pct(s["total_accuracy"]), "similar: the seeds' unknown sets are not all published"] for n, s in ours.items()]
    rows += [[src, v.get("baseline accuracy", "-"), v["MNIST accuracy"], v["OOD accuracy"], v["total accuracy"],
              "reported by the seed"] for src, v in SEED_FIGURES]
    lines += [table(["source", "closed-set acc.", "MNIST acc.", "OOD acc.", "total acc.", "protocol"], rows), ""]
    lines += ["### Unseen digits: 6 known, 4 unknown classes, AUROC (mean of 5 splits)", ""]
    ud = m.get("unseen_digits")
    rows = [["this run", f"{num(ud['auroc_mean'])} +- {num(ud['auroc_std'])}" if ud else
             "not run (evaluate_osr.py --protocol unseen-digits / make benchmark-osr)",
             "identical splits; our training recipe" if ud else "-"]]
    rows += [[src, v if isinstance(v, str) else num(v, 3), "published, same 5 splits"]
             for src, v in PUBLISHED_UNSEEN_DIGITS_AUROC]
    lines += [table(["source", "AUROC", "protocol"], rows), ""]
    return "\n".join(lines)


def _floor_cells(row: dict, families: list[str]) -> list[str]:
    return [f"{num(row[f]['auroc'])} / {pct(row[f]['detected'])}" for f in families] + \
        [pct(row["acceptance"]), ", ".join(row["failed_floors"]) or "none"]


def _step_cells(row: dict, step: str) -> list[str]:
    info = row.get(step)
    if not info:
        return ["-", "-"]
    return [f"{info['leader_better_share']:.2f}", "yes" if info["within_noise"] else "no"]


def selection_section(selection: dict, chosen: str) -> str:
    """The rule, the folds, the floors, and every candidate of both steps, the chosen ones marked."""
    families, candidates, near = selection["families"], selection["candidates"], selection["near"]
    has_near = selection.get("near_family") is not None
    lines = ["## How the decision was chosen", "", f"Rule (stage 2, `osr_core/selection.py`): {selection['rule']}.", ""]
    if selection.get("folds"):
        lines += ["Leave-classes-out folds: auxiliary models trained like this checkpoint on its training split without "
                  "the held-out classes; their unknowns are the held-out classes' validation digits.", "",
                  table(["held out", "trained on", "epochs", "training images", "validation accuracy", "knowns",
                         "unknowns"],
                        [[", ".join(map(str, f["held_out"])), ", ".join(map(str, f["trained_on"])), str(f["epochs"]),
                          str(f["train_limit"] or "all"), num(f["val_accuracy"]), str(f["n_known"]), str(f["n_unknown"])]
                         for f in selection["folds"]]), ""]
    floor_rows = []
    for name, f in selection["floors"].items():
        level = (f"accepted >= {pct(f['accepted'])}" if "accepted" in f
                 else f"AUROC >= {f['auroc']}, rejected >= {pct(f['detected'])}")
        floor_rows.append([name, level, f"{f['near_parts_failing']} of {f['near_parts']}",
                           f"{f['configurations_removed']} of {f['configurations']}"])
    lines += ["Floors, all made from validation digits: each far family (AUROC / share rejected at the thresholds) and "
              "the acceptance family (validation digits as users send them: share accepted). A floor that no candidate "
              "fails tests nothing; this table says what each one removed.", "",
              table(["floor", "level", "near parts alone failing it", "gate configurations it removed"], floor_rows), ""]
    near_names = [n for n in candidates if not n.startswith("max(")]
    header = (["near part"] + ([NEAR_HEADER, "95% interval", "per fold", "best better in", "equal"] if has_near else [])
              + [f"{f} (AUROC / rejected)" for f in families] + ["acceptance", "floors failed"])
    rows = []
    for n in sorted(near_names, key=lambda n: -candidates[n].get("leave_classes_out", candidates[n]["far_mean"])):
        r = candidates[n]
        cells = [f"**{n}** (chosen near part)" if n == near else n]
        if has_near:
            ci = r.get("near_ci95") or [None, None]
            cells += [num(r["leave_classes_out"]), f"[{num(ci[0])}, {num(ci[1])}]",
                      " ".join(num(v, 3) for v in r["per_fold"]), *_step_cells(r, "near_step")]
        rows.append(cells + _floor_cells(r, families))
    lines += ["Step 1, the near part (ranked by the leave-classes-out AUROC; the floors are shown, not applied here):",
              "", table(header, rows), ""]
    gate_names = [n for n in candidates if n.startswith("max(") or n == near]
    header = (["decision"] + ([NEAR_HEADER, "best better in", "equal"] if has_near else [])
              + [f"{f} (AUROC / rejected)" for f in families] + ["acceptance", "floors failed"])
    rows = []
    for n in gate_names:
        r = candidates[n]
        cells = [f"**{n}** (chosen)" if n == chosen else n]
        if has_near:
            cells += [num(r["leave_classes_out"]), *_step_cells(r, "gate_step")]
        rows.append(cells + _floor_cells(r, families))
    lines += [f"Step 2, the gates beside `{near}` (most protective first among equals: both gates, then one, then "
              "none; then the smallest offsets):", "", table(header, rows), ""]
    return "\n".join(lines)


NEAR_HEADER = "leave-classes-out AUROC"


def _difference(comparison: dict | None) -> str:
    if not comparison:
        return "-"
    lo, hi = comparison["ci95"]
    return f"{comparison['difference']:+.4f} [{lo:+.4f}, {hi:+.4f}]" + (" **better**" if comparison["better"] else "")


def _spread(s: dict, fmt) -> str:
    return f"{fmt(s['mean'])} ({fmt(s['min'])}-{fmt(s['max'])})"


def methods_section(summary: dict) -> str:
    """benchmarks/methods.py's table: each recipe over seeds, paired with the default on the screen (and on the full
    judge where confirmed), with the judges' measured resolution; validation data only."""
    rows = []
    for m in summary["methods"]:
        s, full = m["screen"], m.get("full") or {}
        op = s["operating_point"]
        ratio = m.get("time_ratio")
        rows.append([("**" + m["method"] + "** (kept)") if m["method"] == summary.get("chosen") else m["method"],
                     f"`{s['near']}`", f"{num(s['val_accuracy']['mean'])} +- {num(s['val_accuracy']['sd'])}",
                     _spread(s["auroc"], num), _difference(s["vs_default"]),
                     _spread(op["held_out_named_a_digit"], pct), pct(op["acceptance"]["mean"]),
                     pct(op["far_rejected"]["min"]), "-" if ratio is None else f"{ratio:.2f}x",
                     _difference(full.get("vs_default"))])
    seeds = len(summary["seeds"])
    lines = ["## What was tried", "",
             f"`make benchmark-methods`: every recipe trained with {seeds} seeds on the screen (three design partitions "
             "of the digits, 6 known and 4 held out, none a protocol split) and compared *paired* with the default's "
             "first seeds: the difference of each one's leave-classes-out AUROC (its own near part), with its paired "
             "bootstrap 95% interval. Figures are means over seeds with their range; the operating point is the near "
             "part at each class's 99% threshold on the validation digits. Validation data only. "
             + (f"The full judge (ten folds, one class held out in each) trains {len(summary['full_seeds'])} "
                f"seed(s) a recipe, the default twice as many. " if summary.get("full_seeds") else "")
             + f"The rule: {summary.get('rule', '')}.", ""]
    for key, label in (("screen", "the screen"), ("full_resolution", "the full judge")):
        res = summary[key].get("resolution") if key == "screen" else summary.get(key)
        if res:
            lines.append(f"Resolution of {label}: +-{res['half_width']:.4f} (the default's seeds {res['seeds'][1]} "
                         f"against its seeds {res['seeds'][0]}: {res['difference']:+.4f}"
                         + ("" if res.get("covers_seed_noise", True) else
                            f", [{res['ci95'][0]:+.4f}, {res['ci95'][1]:+.4f}]: outside its own interval, so with "
                            "this many seeds its intervals leave seed noise out and the rule reads no verdict of it")
                         + ").")
    agreement = summary.get("agreement")
    if agreement:
        lines.append(f"The screen and the full judge agree on the sign of {agreement['same_sign']} of "
                     f"{agreement['recipes']} recipes measured both ways.")
    header = ["method", "near part", "validation acc. +- sd", "screen AUROC (seed range)",
              "screen: paired difference [95%]", "held-out digits named a digit (range)", "users' digits accepted",
              "far families rejected by the near part alone, lowest", "training time per model", "full judge: paired difference [95%]"]
    return "\n".join(lines + ["", table(header, rows), ""])


def unseen_digits_section(ud: dict) -> str:
    rows = [[", ".join(map(str, s["known_classes"])), num(s["closed_set_accuracy"]), num(s["auroc"]),
             num(s["macro_f1"], 3), pct(s["false_alarm_rate"])] for s in ud["splits"]]
    rows.append(["mean +- std", "-", f"{num(ud['auroc_mean'])} +- {num(ud['auroc_std'])}",
                 f"{num(ud['macro_f1_mean'], 3)} +- {num(ud['macro_f1_std'], 3)}", "-"])
    recipe = f" with `train.py --preset {ud['preset']}`" if "preset" in ud else ""  # not in summaries before presets
    return "\n".join(["## Unseen-digit protocol", "", f"Train on 6 digits{recipe}, calibrate on their validation "
                      "images, score the 4 held-out digits of MNIST test as unknown.", "",
                      table(["known classes", "closed-set acc.", "AUROC", "macro-F1", "false alarms"], rows), ""])


def operating_point_table(m: dict) -> str:
    """What a user sees at the calibrated thresholds: every set's share named a digit (for known digits, named
    right) and why the rest were rejected, beside its AUROC."""
    rows = [["MNIST test digits (known)", str(m["n_known"]), f"{pct(1 - m['false_alarm_rate'])} (named right "
             f"{pct(m.get('named_right'))})", reasons_text(m.get("false_alarms_by_reason", {})), "-"]]
    for name, s in m["sets"].items():
        if s["available"] and not s["seen_in_training"]:
            rows.append([name, str(s["n"]), f"**{pct(s['named_a_digit'])}**", reasons_text(s["rejected_by"]),
                         num(s["auroc"])])
    for name, s in (m.get("covariate_shift") or {}).items():
        seen = ", seen by the selection" if s.get("seen_by_selection") else ""
        rows.append([f"{name} (known digits, shifted{seen})", str(s["n"]),
                     f"{pct(1 - s['rejection_rate'])} (named right {pct(s.get('named_right'))})",
                     reasons_text(s.get("rejected_by", {})), "-"])
    return table(["set", "n", "named a digit", "rejected by", "AUROC"], rows)


def recipe_text(m: dict) -> str:
    """Which training recipe, where metrics.json says (written before presets existed, it does not)."""
    if "preset" not in m:
        return ""
    return "recipe of its own flags; " if m["preset"] is None else f"recipe `train.py --preset {m['preset']}`; "


def render(m: dict, pictures: bool = True) -> str:
    cal = m["calibration"]
    skipped = [f"- **{n}**: {s['reason']}" for n, s in m["sets"].items() if not s["available"]]
    seen = [n for n, s in m["sets"].items() if s["available"] and s["seen_in_training"]]
    unseen = [n for n, s in m["sets"].items() if s["available"] and not s["seen_in_training"]]
    mean_auroc = sum(m["sets"][n]["auroc"] for n in unseen) / len(unseen) if unseen else None
    parts = [
        "# Open-set evaluation report", "",
        f"Checkpoint SHA-256 `{m['checkpoint_sha256']}`; {recipe_text(m)}known classes {m['known_classes']}; decision "
        f"`{cal['score']}`, rule `{cal['rule']}`, target known-acceptance {cal['target_acceptance']} "
        f"(thresholds: {cal['source']}).", "",
        f"- **Closed-set accuracy** on {m['n_known']} MNIST test digits: **{pct(m['closed_set_accuracy'])}**",
        f"- **False-alarm rate** at the calibrated thresholds: **{pct(m['false_alarm_rate'])}** "
        f"(target {pct(1 - cal['target_acceptance'])})",
        f"- Mean AUROC over the {len(unseen)} unseen sets ({', '.join(unseen)}): **{num(mean_auroc)}**",
        f"- Sets used in training or tuning (not reported as unseen, left out of the mean): "
        f"{', '.join(seen) if seen else 'none'}", "",
        "## At the thresholds: what a user sees", "",
        "Each set's share answered as a digit at the calibrated thresholds, and why the rest were rejected (the "
        "part of the decision that was the largest). Unknown sets seen in training or selection are left out.", "",
        operating_point_table(m), "",
        "## Quality targets", "", targets_table(m), "", missed_target_notes(m),
        "## Unknown sets", "", sets_table(m["sets"]), "",
    ]
    if skipped:
        parts += ["Skipped:", *skipped, ""]
    if cal.get("selection"):
        parts += [selection_section(cal["selection"], cal["score"])]
    parts += ["## Ablation: what each signal contributes (AUROC)", "", ablation_table(m["sets"]), ""]
    if m.get("baselines"):
        parts += ["## Baselines on the same model and data", "",
                  "Each detector is calibrated on the validation split by its own rule (the seeds' `2 x class mean`, "
                  "or the 99% quantile), then measured exactly like this model's decision.", "",
                  baselines_table(m), ""]
    if m.get("comparisons"):
        parts += ["## Other architectures on the same data", "",
                  "Each trained, calibrated on its own validation split and evaluated by the same commands.", "",
                  comparisons_table(m), ""]
    cs = m.get("covariate_shift")
    if cs:
        rows = [[n + (" (seen by the selection)" if v.get("seen_by_selection") else ""), str(v["n"]), pct(v["accuracy"]),
                 pct(v["named_right"]), pct(v["rejection_rate"]),
                 reasons_text(v["rejected_by"]), pct(v["accuracy_of_accepted"])] for n, v in cs.items()]
        parts += ["## Covariate shift: known digits, distorted (not unknowns)", "",
                  "Gaussian noise (std 0.3), rotation up to 30 degrees, and both, on MNIST test. `scans`: MNIST test "
                  "digits re-rendered as a scan or photo shows them (dark ink on light paper, 40-120 px tall on a "
                  "larger sheet, noise, JPEG) and read through the same preprocessing as a user's images, beside "
                  "`scans_in_mnist_form`, the same digits as MNIST has them. The selection's acceptance floor reads "
                  "validation digits through the same scan generator, so `scans` is not untouched by the choice.", "",
                  table(["distortion", "n", "accuracy", "named right", "rejected", "rejected by", "accuracy of accepted"],
                        rows), ""]
    if m.get("unseen_digits"):
        parts += [unseen_digits_section(m["unseen_digits"])]
    if m.get("methods"):
        parts += [methods_section(m["methods"])]
    parts += [DEFINITIONS.format(n_boot=m["bootstrap_resamples"])]
    if pictures:
        parts += ["## Pictures", "", pictures_section(m["sets"])]
    parts += [comparison(m)]
    return "\n".join(parts) + "\n"
