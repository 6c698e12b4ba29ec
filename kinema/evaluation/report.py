"""The evaluation report: an HTML page of tables, per-family bar charts and strips of the worst cases."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
from PIL import Image

from kinema.evaluation.scoring import ACCURACY_METRICS
from kinema.io import contact_sheet

RUNS = ("model", "upper", "still", "noise")
RUN_LABELS = {"model": "model", "upper": "upper bound (2nd take)", "still": "still (1st frame)", "noise": "noise"}
RUN_COLOURS = {"model": "#3b6fd8", "upper": "#3aa655", "still": "#999999", "noise": "#d9822b"}
CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}.note{color:#666;font-size:90%}
img{max-width:100%;image-rendering:pixelated}figure{margin:0 0 1.5em}"""


def normalised(model: float | None, upper: float | None, floor: float | None) -> float | None:
    """(model - floor) / (upper - floor) clipped to [0, 1] as Physics-IQ clips; None if undefined."""
    if model is None or upper is None or floor is None or upper - floor <= 1e-6:
        return None
    return min(1.0, max(0.0, (model - floor) / (upper - floor)))


def bar_chart(path: Path, title: str, groups: list[str], runs: dict[str, dict[str, float | None]]) -> Path:
    """Grouped bars in [0, 1]: one group per name in `groups`, one bar per run (missing values left out)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in RUNS if r in runs]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.8 * len(groups) + 1.5), 3.2), dpi=100)
    width = 0.8 / max(1, len(shown))
    x = np.arange(len(groups))
    for i, run in enumerate(shown):
        values = [np.nan if runs[run].get(g) is None else runs[run][g] for g in groups]
        ax.bar(x + (i - (len(shown) - 1) / 2) * width, values, width, label=RUN_LABELS[run], color=RUN_COLOURS[run])
    ax.set_xticks(x, groups, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_title(title, fontsize=10, pad=20)
    ax.legend(fontsize=7, ncol=len(shown), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _family_table(family: str, runs: dict[str, dict]) -> str:
    shown = [r for r in RUNS if r in runs]
    head = "".join(f"<th>{RUN_LABELS[r]}</th>" for r in shown) + "<th>normalised</th>"
    rows = []
    for name in (*ACCURACY_METRICS, "score", "trajectory_error", "mirror", "first_frame_psnr", "unparsed"):
        if not any(name in runs[r] for r in shown):
            continue
        cells = "".join(f"<td>{_cell(runs[r].get(name))}</td>" for r in shown)
        norm = normalised(runs.get("model", {}).get(name), runs.get("upper", {}).get(name), runs.get("still", {}).get(name))
        rows.append(f"<tr><td>{name}</td>{cells}<td>{_cell(norm) if name in (*ACCURACY_METRICS, 'score') else '–'}</td></tr>")
    cases = runs.get("model", next(iter(runs.values()))).get("cases", 0)
    return f"<h3>{html.escape(family)} <span class=note>({cases} cases)</span></h3><table><tr><th>metric</th>{head}</tr>{''.join(rows)}</table>"


def save_pair(path: Path, generated: np.ndarray, truth: np.ndarray, count: int = 9) -> Path:
    """A two-row strip: generated frames above the simulation's, `count` evenly spaced frames each."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet = Image.fromarray(contact_sheet([generated, truth], count))
    scale = max(1, 128 // truth.shape[1])  # small clips are enlarged so they can be seen
    sheet.resize((sheet.width * scale, sheet.height * scale), Image.NEAREST).save(path)
    return path


def write_report(out: Path, results: dict, worst: list[dict]) -> Path:
    """Write out/report.html with charts under out/charts and strips (from `worst` records) under out/strips."""
    out = Path(out)
    runs = results["runs"]
    families = sorted(runs[next(iter(runs))]["families"])
    parts = [f"<!doctype html><meta charset=utf-8><title>kinema eval</title><style>{CSS}</style>",
             "<h1>kinema world-simulation benchmark</h1>",
             f"<p>suite <b>{html.escape(results['suite_version'])}</b> · {results['cases']} cases at "
             f"{html.escape(results['size'])}, {results['num_frames']} frames, {results['fps']:g} fps · "
             f"checkpoint <code>{html.escape(str(results.get('checkpoint')))}</code> · seed {results.get('seed')} · "
             f"steps {results.get('steps')} · {results.get('seconds_per_case', 0):.2f} s per case</p>",
             "<p class=note>Accuracy metrics lie in [0, 1], higher is better. The upper bound scores a second "
             "simulation with a tiny perturbation; the floors are the first frame held still and uniform noise. "
             "normalised = (model − still) / (upper − still), clipped to [0, 1]. trajectory_error is a fraction of the frame diagonal "
             "(lower is better); mirror is the share of motions made the opposite way.</p>"]
    overview = {r: {f: runs[r]["families"][f].get("score") for f in families} | {"overall": runs[r]["overall"].get("score")}
                for r in runs}
    bar_chart(out / "charts" / "overview.png", "mean case score per family", [*families, "overall"], overview)
    parts.append("<h2>Overview</h2><figure><img src='charts/overview.png' alt='score per family'></figure>")
    parts.append(_family_table("overall", {r: runs[r]["overall"] for r in runs}))
    parts.append("<h2>Families</h2>")
    for family in families:
        per_run = {r: runs[r]["families"][family] for r in runs}
        names = [n for n in (*ACCURACY_METRICS, "score") if any(n in v for v in per_run.values())]
        chart = bar_chart(out / "charts" / f"{family}.png", family, names, per_run)
        parts.append(f"<figure><img src='charts/{chart.name}' alt='{family} metrics'></figure>")
        parts.append(_family_table(family, per_run))
    if worst:
        parts.append("<h2>Worst cases</h2><p class=note>Top row generated, bottom row the simulation.</p>")
        for record in worst:
            strip = save_pair(out / "strips" / f"{record['id']}.png", record["frames"], record["truth"])
            score = record["scores"].get("score")
            parts.append(f"<figure><img src='strips/{strip.name}' alt='{record['id']}'><figcaption><b>{record['id']}</b> "
                         f"score {_cell(score)} · “{html.escape(record['prompt'])}”</figcaption></figure>")
    path = out / "report.html"
    path.write_text("\n".join(parts) + "\n")
    return path

