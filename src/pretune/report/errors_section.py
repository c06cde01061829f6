"""Errors a person can read, from a run's test predictions: the most confidently wrong examples,
the most confused class pairs, misclassified images as thumbnails, and for NER the sentences
whose predicted entities differ from the gold ones, with the differing words marked. Which list
a run's page shows is its task's to say (Task.error_view names one of VIEWS)."""

from __future__ import annotations

from pretune.report.page import Block, Cell, Page, fmt
from pretune.tasks import task_type

SHOWN = 15  # examples per list: enough to see a pattern, few enough to read


def add(page: Page, metrics: dict, task: str, predictions: list[dict]) -> None:
    blocks = []
    split = "test" if "test" in metrics else "validation"
    labels = (metrics.get("model") or {}).get("labels")  # a compressed variant records none
    if "confusion_matrix" in metrics.get(split, {}) and labels:
        blocks += confused_pairs(metrics[split]["confusion_matrix"], labels, split)
    view = VIEWS.get(task_type(task).error_view or "")
    if predictions and view:
        blocks += view(predictions)
    if blocks:
        page.section("errors", "Errors").blocks += blocks


def confused_pairs(matrix: list[list[int]], labels: list[str], split: str) -> list[Block]:
    pairs = [(matrix[i][j], i, j) for i in range(len(labels)) for j in range(len(labels)) if i != j and matrix[i][j]]
    if not pairs:
        return [Block("note", title="Most confused class pairs", text=f"No class was mistaken for another ({split}).")]
    rows = []
    for count, i, j in sorted(pairs, reverse=True)[:10]:
        share = count / max(sum(matrix[i]), 1)
        rows.append([Cell(labels[i]), Cell(labels[j]), Cell(f"{count:,}", count), Cell(f"{share:.1%}", share)])
    return [Block("table", title=f"Most confused class pairs ({split})", sortable=True,
                  columns=["true", "predicted as", "rows", "share of the true class"], rows=rows)]


def confidently_wrong(predictions: list[dict], images: bool) -> list[Block]:
    wrong = sorted((p for p in predictions if p["true"] != p["pred"]), key=lambda p: -p["score"])
    if not wrong:
        return [Block("note", title="Most confidently wrong", text="Every test example shown was predicted right.")]
    blocks = []
    if images:
        thumbs = [{"image": "data:image/png;base64," + p["thumbnail"], "true": p["true"], "pred": p["pred"],
                   "score": f"confidence {p['score']:.2f}", "caption": f"{p['text']}: true {p['true']}"}
                  for p in wrong if "thumbnail" in p]
        blocks.append(Block("thumbs", title=f"Misclassified test images ({len(wrong)} of {len(predictions)})",
                            rows=thumbs))
        if len(thumbs) == len(wrong):  # every one is in the pictures; a table of row numbers adds nothing
            return blocks
    rows = [[Cell(p["text"], css="text"), Cell(p["true"]), Cell(p["pred"]), Cell(f"{p['score']:.3f}")]
            for p in wrong[:SHOWN]]
    blocks.append(Block("examples", title=f"Most confidently wrong ({len(wrong)} of {len(predictions)} test rows)",
                        columns=["input", "true", "predicted", "confidence"], rows=rows))
    return blocks


def largest_errors(predictions: list[dict]) -> list[Block]:
    worst = sorted(predictions, key=lambda p: -abs(p["pred"] - p["true"]))[:SHOWN]
    rows = [[Cell(p["text"], css="text"), Cell(fmt(p["true"])), Cell(fmt(p["pred"])), Cell(fmt(p["pred"] - p["true"]))]
            for p in worst]
    return [Block("examples", title="Largest errors (test)", columns=["input", "true", "predicted", "error"],
                  rows=rows)]


def wrong_label_sets(predictions: list[dict]) -> list[Block]:
    def mistakes(p):
        return len(set(p["true"]) ^ set(p["pred"]))

    wrong = sorted((p for p in predictions if mistakes(p)), key=lambda p: -mistakes(p))
    if not wrong:
        return [Block("note", title="Wrong label sets", text="Every test row got exactly its labels.")]
    rows = [[Cell(p["text"], css="text"), Cell(", ".join(p["true"]) or "(none)"),
             Cell(", ".join(p["pred"]) or "(none)"), Cell(str(mistakes(p)))] for p in wrong[:SHOWN]]
    return [Block("examples", title=f"Rows with the most wrong labels ({len(wrong)} of {len(predictions)})",
                  columns=["input", "true labels", "predicted labels", "labels wrong"], rows=rows)]


def confidently_wrong_rows(predictions: list[dict]) -> list[Block]:
    return confidently_wrong(predictions, images=any("thumbnail" in p for p in predictions))


def differing_sentences(predictions: list[dict]) -> list[Block]:
    differing = [p for p in predictions if p["true"] != p["pred"]]
    if not differing:
        return [Block("note", title="Sentences with differing entities",
                      text="Every test sentence got exactly its gold tags.")]
    sentences = []
    for p in differing[:SHOWN]:
        differs = [t != q for t, q in zip(p["true"], p["pred"], strict=True)]
        sentences.append({"gold": list(zip(p["tokens"], p["true"], differs, strict=True)),
                          "pred": list(zip(p["tokens"], p["pred"], differs, strict=True))})
    return [Block("spans", title=f"Test sentences whose predicted tags differ from the gold ones "
                                 f"({len(differing)} of {len(predictions)}; differing words in red)", rows=sentences)]


# The lists of readable errors a task can name (Task.error_view), each over its report_rows.
VIEWS = {"confidently-wrong": confidently_wrong_rows, "largest-errors": largest_errors,
         "wrong-label-sets": wrong_label_sets, "differing-tags": differing_sentences}
