"""Model cards: what a trained network is, what it was trained on, and under which license its style may be used.

Like torchvision's ``Weights.meta`` and Hugging Face model cards. The trainer builds one for every
checkpoint (:func:`build_card`); it is kept in the checkpoint's ``meta.json`` (``"card"``) and in the
``model.safetensors`` metadata (``"model_card"``, JSON), so the model file alone still carries it.
``stylekit.load(...).card`` returns it; ``stylekit export`` copies it into ONNX ``metadata_props`` or
TorchScript extra files and writes ``MODEL_CARD.md`` (:func:`card_markdown`) beside the exported file.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

#: 2: the style's license is ``license`` (format 1 spelled it ``licence``; :func:`upgrade_card` reads both)
CARD_FORMAT = 2
#: the key of the card (JSON) in safetensors metadata, ONNX metadata_props and TorchScript extra files
METADATA_KEY = "model_card"
CARD_FILE = "MODEL_CARD.md"


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def style_entries(images: list[str], license: str | list[str] | None = None,
                  attribution: str | list[str] | None = None, styles: list[str] | None = None) -> list[dict]:
    """Each style image's file name and sha256 (none for a file that cannot be read), with the recipe's license
    and attribution when it gives them (one for all images, or a list with one each) and, for a multi-style
    network, the name of the style it teaches (``styles``). Only the file's name: the card travels, the
    training machine's paths need not."""
    def each(value: str | list[str] | None) -> list[str | None]:
        return list(value) if isinstance(value, list) else [value] * len(images)

    entries = []
    for i, (image, license_, attribution_) in enumerate(zip(images, each(license), each(attribution))):
        try:
            digest = sha256_file(image)
        except OSError:
            digest = None
        entry = {"name": Path(image).name, "sha256": digest}
        entry.update({k: v for k, v in (("license", license_), ("attribution", attribution_),
                                        ("style", styles[i] if styles else None)) if v})
        entries.append(entry)
    return entries


def build_card(recipe: dict[str, Any], *, name: str, step: int, wall_time_s: float, metrics: dict[str, Any],
               style: list[dict], versions: dict[str, Any]) -> dict[str, Any]:
    """The card of a checkpoint: ``recipe`` resolved (as config.yaml holds it), ``metrics`` the last logged row
    (``metrics.jsonl``'s format), ``style`` from :func:`style_entries`, ``versions`` from
    :func:`environment_info`."""
    schedule, data = recipe.get("schedule") or {}, recipe.get("data") or {}
    return {
        "format": CARD_FORMAT,
        "name": name,
        "recipe_name": recipe.get("name", ""),
        "description": recipe.get("description", ""),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "style": style,
        "training": {"steps": step, "iterations": schedule.get("iterations"), "wall_time_s": round(wall_time_s, 1),
                     "batch_size": schedule.get("batch_size"), "image_size": data.get("image_size"),
                     "backbone": (recipe.get("backbone") or {}).get("name"),
                     "losses": {k: v.get("weight") for k, v in (recipe.get("losses") or {}).items()}},
        "final_metrics": {k: metrics[k] for k in ("step", "loss", "terms") if k in metrics},
        "versions": versions,
        "recipe": recipe,
    }


def card_metadata(card: dict[str, Any] | None) -> dict[str, str]:
    """The card as file metadata (safetensors, ONNX, TorchScript): ``{"model_card": JSON}``, empty without a card."""
    return {METADATA_KEY: json.dumps(card)} if card else {}


def card_summary(card: dict[str, Any]) -> dict[str, str]:
    """A few plain string entries beside the JSON, for viewers (e.g. Netron) that show ONNX metadata as it is."""
    style = card.get("style") or []
    plain = {"name": card.get("name"), "style": ", ".join(s.get("name", "?") for s in style),
             "style_license": "; ".join(dict.fromkeys(s["license"] for s in style if s.get("license"))),
             "style_attribution": "; ".join(dict.fromkeys(s["attribution"] for s in style if s.get("attribution"))),
             "steps": (card.get("training") or {}).get("steps"),
             "stylekit_version": (card.get("versions") or {}).get("stylekit")}
    return {k: str(v) for k, v in plain.items() if v not in (None, "")}


def upgrade_card(card: dict[str, Any]) -> dict[str, Any]:
    """A card of any format in the current one: a format-1 card's ``licence`` (style entries and the recipe's
    ``style``) becomes ``license``, so readers look up one key whatever wrote the file."""
    card = dict(card)
    if isinstance(card.get("style"), list):
        card["style"] = [_renamed(entry, "licence", "license") for entry in card["style"]]
    if isinstance(card.get("recipe"), dict) and isinstance(card["recipe"].get("style"), dict):
        card["recipe"] = {**card["recipe"], "style": _renamed(card["recipe"]["style"], "licence", "license")}
    return card


def _renamed(entry: Any, old: str, new: str) -> Any:
    if not isinstance(entry, dict) or old not in entry:
        return entry
    return {(new if k == old else k): v for k, v in entry.items() if not (k == old and new in entry)}


def parse_card(text: str | None) -> dict[str, Any]:
    """A card from its JSON text ({} when absent or unreadable: an old checkpoint, a hand-made file)."""
    try:
        card = json.loads(text) if text else {}
    except ValueError:
        return {}
    return upgrade_card(card) if isinstance(card, dict) else {}


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "not recorded"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ") if value not in (None, "") else "–"


def card_markdown(card: dict[str, Any], usage: str = "") -> str:
    """``MODEL_CARD.md``: the card for people (the same facts as the JSON; ``usage`` says how to run the file)."""
    if not card:
        lines = ["# stylekit style-transfer network", "",
                 "This checkpoint was written before stylekit recorded model cards: its style image, license, "
                 "training and metrics are not known."]
        return "\n".join(lines + (["", "## Use", "", usage] if usage else [])) + "\n"
    card = upgrade_card(card)
    training, metrics = card.get("training") or {}, card.get("final_metrics") or {}
    lines = [f"# {card.get('name') or card.get('recipe_name') or 'stylekit model'}", "",
             f"A feed-forward style-transfer network (Johnson et al. 2016) trained with stylekit from the recipe "
             f"`{card.get('recipe_name', '?')}`." + (f" {card['description']}" if card.get("description") else ""),
             ""]
    styles = [entry["style"] for entry in card.get("style") or [] if entry.get("style")]
    if styles:  # a multi-style network
        lines += [f"One network for {len(styles)} styles (conditional instance normalization, Dumoulin et al. "
                  f"2017): pick one (`--style {styles[0]}`) or blend them (`--style {styles[0]}=0.5,"
                  f"{styles[-1]}=0.5`).", ""]
    lines += ["## Style" + ("s" if styles else ""), "", "| " + ("style | " if styles else "")
              + "image | sha256 | license | attribution |", "|---" * (5 if styles else 4) + "|"]
    for entry in card.get("style") or []:
        lines.append("| " + (f"{_cell(entry.get('style'))} | " if styles else "")
                     + f"{_cell(entry.get('name'))} | `{entry.get('sha256') or 'unknown'}` | "
                     f"{_cell(entry.get('license') or 'not given')} | {_cell(entry.get('attribution'))} |")
    if not all(entry.get("license") for entry in card.get("style") or [{}]):
        lines += ["", "The recipe gives no license for a style image (`style.license`): check its terms before "
                      "distributing images made with this model."]
    losses = ", ".join(f"{k} × {v:g}" if isinstance(v, (int, float)) else k
                       for k, v in (training.get("losses") or {}).items())
    lines += ["", "## Training", "", "| | |", "|---|---|",
              f"| steps | {training.get('steps', '?')} of {training.get('iterations', '?')} |",
              f"| wall time | {_duration(training.get('wall_time_s'))} |",
              f"| batch × image size | {training.get('batch_size', '?')} × {training.get('image_size', '?')} px |",
              f"| perception backbone | {_cell(training.get('backbone'))} |",
              f"| loss terms (weights) | {_cell(losses)} |",
              f"| created | {_cell(card.get('created'))} |"]
    terms = metrics.get("terms") or {}
    if terms:
        lines += ["", f"## Final metrics (means over the last logged steps, up to step {metrics.get('step', '?')})", "",
                  "| term | unweighted | weighted |", "|---|---:|---:|"]
        lines += [f"| {k} | {v.get('raw', float('nan')):.4g} | {v.get('weighted', float('nan')):.4g} |"
                  for k, v in terms.items()]
        if isinstance(metrics.get("loss"), (int, float)):
            lines.append(f"| **total** | | {metrics['loss']:.4g} |")
    lines += _evaluation_lines(card.get("evaluation") or [])
    if usage:
        lines += ["", "## Use", "", usage]
    versions = card.get("versions") or {}
    if versions:
        lines += ["", "## Versions", "", ", ".join(f"{k} {v}" for k, v in versions.items())]
    if card.get("recipe"):
        lines += ["", "<details><summary>The resolved recipe</summary>", "", "```yaml",
                  yaml.safe_dump(card["recipe"], sort_keys=False, allow_unicode=True).rstrip(), "```", "",
                  "</details>"]
    return "\n".join(lines) + "\n"


def _evaluation_lines(entries: list[dict[str, Any]]) -> list[str]:
    """The card's held-out results (``export --evaluation``) as a table: one row per data set."""
    keys = [key for key in CARD_EVALUATION_KEYS if any(key in (e.get("means") or {}) for e in entries)]
    if not keys:
        return []
    styled = any(entry.get("style") for entry in entries)  # a multi-style model: one row per style judged
    labels = ["data set", *(["style"] if styled else []), "images", *(f"`{key}`" for key in keys)]
    aligns = ["---", *(["---"] if styled else []), "---:", *(["---:"] * len(keys))]
    lines = ["", "## Results on held-out images (`stylekit evaluate`)", "",
             "| " + " | ".join(labels) + " |", "|" + "|".join(aligns) + "|"]
    for entry in entries:
        means = entry.get("means") or {}
        cells = [_cell(entry.get("dataset")), *([_cell(entry.get("style") or "–")] if styled else []),
                 _cell(entry.get("images")), *(f"{means[key]:.4g}" if key in means else "–" for key in keys)]
        lines.append("| " + " | ".join(cells) + " |")
    judges = sorted({entry["judges"] for entry in entries if entry.get("judges")})
    return lines + ([""] + [f"Judges: {text}" for text in judges] if judges else [])


#: the evaluation columns a model card keeps (means over the held-out images), when present
CARD_EVALUATION_KEYS = ("depth_ordinal", "depth_rmse", "edge_f", "bsds_f", "saliency_cc", "ssim",
                        "style_loss_normalized", "texture_lite0", "texture_lite2", "texture_gabor", "blob_count")
_GENERIC_FOLDERS = {"rgb", "images", "image", "test", "train", "val", "content"}


def evaluation_entry(report: dict[str, Any], source: str) -> dict[str, Any]:
    """What a card says about one evaluated model, from ``stylekit evaluate``'s ``metrics.json`` (``report``):
    the data set (named after its folder), the image count, the depth judge, and the means of
    :data:`CARD_EVALUATION_KEYS` for ``source``."""
    content = Path(str((report.get("inputs") or {}).get("content") or ""))
    dataset = next((part for part in reversed(content.parts) if part.lower() not in _GENERIC_FOLDERS), content.name)
    summary = (report.get("summary") or {}).get(source) or {}
    means = {key: summary[key]["mean"] for key in CARD_EVALUATION_KEYS
             if isinstance(summary.get(key), dict) and isinstance(summary[key].get("mean"), (int, float))}
    judges = " ".join(j.get("text", "") for j in report.get("judges") or [])
    # the card is this model's: its evaluation name (a run folder's, e.g. `multi_style_lite:wave`) reads "this model",
    # so the judges of one model's evaluations (say, one per style) read alike and the card lists them once
    judges = re.sub(rf"(?<![\w:.-]){re.escape(source)}(?![\w:.-])", "this model", judges)
    entry = {"dataset": dataset, "images": len(report.get("images") or []), "judges": judges, "means": means}
    style = (report.get("inputs") or {}).get("model_style")  # a multi-style model judged in one of its styles
    return {**entry, "style": style} if style else entry


def environment_info() -> dict[str, Any]:
    """Versions of stylekit and its main dependencies, and the git commit stylekit was run from."""
    import timm
    import torch
    import torchvision

    from .version import __version__

    info = {"stylekit": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "timm": timm.__version__, "python": platform.python_version()}
    try:
        root = Path(__file__).resolve().parent

        def git(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=5)

        # Only if git tracks this very package: a copy in site-packages inside another repo's venv must not
        # report that repo's commit.
        if git("ls-files", "--error-unmatch", "__init__.py").returncode == 0:
            commit = git("rev-parse", "HEAD")
            if commit.returncode == 0:
                info["git_commit"] = commit.stdout.strip()
                info["git_dirty"] = bool(git("status", "--porcelain", "--", ".").stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    if "git_commit" not in info:  # installed from a git URL: pip recorded the commit (PEP 610 direct_url.json)
        try:
            from importlib.metadata import distribution

            vcs = json.loads(distribution("stylekit").read_text("direct_url.json") or "{}").get("vcs_info") or {}
            if vcs.get("commit_id"):
                info["git_commit"] = vcs["commit_id"]
        except Exception:  # no metadata (running from a source tree), malformed file…
            pass
    return info
