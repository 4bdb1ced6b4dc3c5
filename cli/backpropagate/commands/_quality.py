"""The quality report for people: held-out loss before and after, and each prompt's answers together.

Shared by `train`, `export`, `eval` and `show-run`, which print the same report. Each prompt is
followed by one line per model (base, fine-tune, each GGUF), marked + or - when an expected text
says what a right answer contains.
"""

from backpropagate.contract.quality import QualityReport, hit


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


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
