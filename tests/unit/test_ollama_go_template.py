"""Go's own text/template renders every emitted Ollama template as our renderer and the tokenizer's template do.

Our Go-template renderer (backpropagate.ollama.gotemplate) stands in for Ollama when a
template is derived; here the real thing checks it: a small Go program
(go_template_check/main.go, built once) executes each derived template of the corpus on each
of its probes with Ollama's values (Messages, System, Think, IsThinkSet), in one process.
It needs `go` (Debian's golang-go; scripts/test.sh installs it as root).
"""

import json
import os
import shutil
import subprocess

import pytest
from backpropagate.ollama import gotemplate
from backpropagate.ollama.probes import PROBES, ollama_values
from backpropagate.ollama.templates import probes_for, render_hf

from tests.unit.test_ollama_templates import CORPUS, REFUSED, derived_from, hf

PROGRAM = os.path.join(os.path.dirname(__file__), "go_template_check", "main.go")


@pytest.fixture(scope="module")
def go_execute(tmp_path_factory):
    """Run (template, values) pairs through Go's text/template: [(output, error)]."""
    go = shutil.which("go")
    if go is None:
        reason = "Go's text/template check needs `go`: apt-get install golang-go (scripts/test.sh does as root)"
        if os.environ.get("REQUIRE_LOCAL_TIER"):
            pytest.fail(reason)
        pytest.skip(reason)
    binary = tmp_path_factory.mktemp("go") / "go_template_check"
    subprocess.run([go, "build", "-o", str(binary), PROGRAM], check=True, capture_output=True)

    def execute(checks: list[tuple[str, dict]], tags: bool = False) -> list[tuple]:
        done = subprocess.run([str(binary)], input=json.dumps([{"Template": t, "Values": v} for t, v in checks]),
                              capture_output=True, text=True, check=True)
        return [(r["output"], r["error"]) + ((r["thinking_tags"],) if tags else ()) for r in json.loads(done.stdout)]

    return execute


def test_go_renders_every_derived_template_of_the_corpus_as_our_renderer_and_the_tokenizer_template(go_execute):
    checks, expected = [], []
    for entry in CORPUS:
        if entry["file"] in REFUSED:
            continue
        template = hf(entry["file"])
        derived = derived_from(entry["file"])
        for probe in probes_for(template, derived.takes_system, derived.thinks, derived.reasons):
            values = ollama_values(probe.messages, think=probe.think)
            checks.append((derived.template, values))
            expected.append((entry["file"], probe.name, render_hf(template, probe.messages, probe.think),
                             gotemplate.render(derived.template, values)))
        # Ollama's SYSTEM given to a model whose conversation has none
        values = ollama_values(PROBES["one question"], system="Be brief.")
        checks.append((derived.template, values))
        ours = gotemplate.render(derived.template, values)
        expected.append((entry["file"], "the model's SYSTEM", ours, ours))
    results = go_execute(checks)
    differing = [f"{file}: {probe}: {error or repr(output)}" for (file, probe, tokenizer, ours), (output, error)
                 in zip(expected, results) if error or output != ours or output != tokenizer]
    assert differing == []
    assert len(results) == len(checks) > 1000


def test_ollama_takes_exactly_the_templates_that_write_an_answers_reasoning_as_thinking_with_its_tags(go_execute):
    """Ollama counts a model as thinking when its template writes {{ .Thinking }} inside the messages, and
    takes the text around it for the reasoning markers it separates from the answer."""
    derived = [(e["file"], derived_from(e["file"])) for e in CORPUS if e["file"] not in REFUSED]
    results = go_execute([(d.template, ollama_values(PROBES["one question"])) for _, d in derived], tags=True)
    tags = {file: found for (file, d), (_, _, found) in zip(derived, results) if d.reasons}
    assert [file for (file, d), (_, _, found) in zip(derived, results) if bool(found) != d.reasons] == []
    assert tags["qwen3.jinja"] == ["<think>", "</think>"]
    assert all("think" in opening and "think" in closing for opening, closing in tags.values()), tags
    assert len(tags) >= 20


def test_go_refuses_a_template_our_renderer_refuses(go_execute):
    broken = "{{ if .System }}{{ .System }}"
    with pytest.raises(ValueError):
        gotemplate.render(broken, ollama_values(PROBES["one question"]))
    [(output, error)] = go_execute([(broken, ollama_values(PROBES["one question"]))])
    assert output == "" and "unexpected EOF" in error


def test_go_and_our_renderer_agree_on_assignment_across_range_and_the_think_fields(go_execute):
    template = ('{{- $first := true }}{{ range $i, $_ := .Messages }}{{ if $first }}[{{ .Role }}]{{ end }}'
                '{{ $first = false }}{{ .Content }};{{ end }}{{ if and $.IsThinkSet (not $.Think) }}no-think{{ end }}')
    values = ollama_values(PROBES["system, several turns"], think=False)
    [(output, error)] = go_execute([(template, values)])
    assert error == ""
    assert output == gotemplate.render(template, values) == (
        "[system]You are a terse assistant. Answer in one sentence.;What do bees make?;Honey, from nectar.\n"
        "They store it in wax combs.;And wasps?;no-think")

