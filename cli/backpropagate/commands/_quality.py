"""The quality report for people: held-out loss before and after, and each prompt's answers together.

Shared by `train`, `export`, `eval` and `show-run`, which print the same report. Each prompt is
followed by one line per model (base, fine-tune, each GGUF), marked + or - when an expected text
says what a right answer contains.
"""

from backpropagate.contract.quality import QualityReport, hit
from backpropagate.output import for_people, table


def quality_lines(report: QualityReport, width: int = 100) -> list[str]:
    lines = []
    if report.eval_loss:
        curve = ", ".join(f"step {step}: {loss:.4f}" for step, loss in report.eval_loss)
        lines.append(f"held-out loss ({report.eval_examples} examples; {report.eval_source}): {curve}")
    if not report.answers:
        return lines
    ggufs = sorted({name for answer in report.answers for name in answer.gguf})
    label = max([len("fine-tune"), *(len(name) for name in ggufs)])
    lines.append("answers:")
    for answer in report.answers:
        lines.append(f"  {answer.prompt}" + (f"  (expect: {answer.expect})" if answer.expect else ""))
        replies = [("base", answer.base), ("fine-tune", answer.fine_tune),
                   *((name, answer.gguf[name]) for name in ggufs if name in answer.gguf)]
        for name, reply in replies:
            mark = ("+ " if hit(reply, answer.expect) else "- ") if answer.expect else ""
            lines.append(f"    {name:<{label}}  {_cut(mark + ' '.join(reply.split()), width)}")
    hits = report.hits()
    if hits["expected"]:
        counted = [f"base {hits['base']}", f"fine-tune {hits['fine_tune']}",
                   *(f"{name} {hits[f'gguf:{name}']}" for name in ggufs)]
        lines.append(f"hits (answer contains the expected text), of {hits['expected']}: " + ", ".join(counted))
    return lines


def quality_table(report: QualityReport) -> list[str]:
    """The report in a few lines, one per model: held-out loss and hits where the run measured them."""
    hits = report.hits() if report.answers else {}
    ggufs = sorted(key[len("gguf:"):] for key in hits if key.startswith("gguf:"))
    losses = {"base": report.eval_loss[0][1], "fine-tune": report.eval_loss[-1][1]} if report.eval_loss else {}
    header = ("model", *(("held-out loss",) if losses else ()), *((f"hits of {hits['expected']}",) if hits.get(
        "expected") else ()))
    if len(header) == 1:
        return []
    rows = [header]
    for name, key in (("base", "base"), ("fine-tune", "fine_tune"), *((f"gguf {g}", f"gguf:{g}") for g in ggufs)):
        loss = (for_people(losses[name]) if name in losses else "-",) if losses else ()
        rows.append((name, *loss, *((str(hits[key]),) if hits.get("expected") else ())))
    return table(rows).splitlines()


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
