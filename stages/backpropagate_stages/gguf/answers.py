"""The exported GGUF answers the run's eval prompts, through llama.cpp, into the quality report.

Greedy answers through the chat template the GGUF carries, the way `backprop chat` and Ollama
will run it, so the report shows the fine-tune's answers and the GGUF's side by side.
"""

from pathlib import Path

from backpropagate.contract.quality import Answered, QualityReport, load_prompts, read_report, write_report

from backpropagate_stages.gguf.llama_tools import llama_cpp


def answer_prompts(gguf_file: Path, prompts_file: str, max_new_tokens: int, report_file: Path) -> QualityReport:
    """Add this GGUF's answers to the report (one per prompt), keeping what other models answered."""
    prompts = load_prompts(Path(prompts_file))
    llm = llama_cpp().Llama(model_path=str(gguf_file), n_ctx=2048, verbose=False, seed=0)
    try:
        replies = [llm.create_chat_completion(messages=[{"role": "user", "content": p.prompt}],
                                              max_tokens=max_new_tokens, temperature=0.0)
                   ["choices"][0]["message"]["content"].strip() for p in prompts]
    finally:
        llm.close()
    report = read_report(report_file) or QualityReport()
    earlier = {a.prompt: a for a in report.answers}
    answers = []
    for prompt, reply in zip(prompts, replies):
        known = earlier.get(prompt.prompt) or Answered(prompt=prompt.prompt, expect=prompt.expect, kind=prompt.kind)
        answers.append(Answered(**{**vars(known), "gguf": {**known.gguf, gguf_file.name: reply}}))
    report = QualityReport(**{**vars(report), "answers": answers})
    write_report(report_file, report)
    return report
