// Executes Ollama chat templates with Go's own text/template, as Ollama does.
//
// Reads a JSON list of {"Template": ..., "Values": ...} on stdin and writes a JSON list of
// {"output": ..., "error": ...} on stdout, one per case, so that one process checks them all.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/template"
)

// Message holds the fields of Ollama's api.Message that chat templates read.
type Message struct {
	Role     string
	Content  string
	Thinking string
}

// Values holds what Ollama passes a chat template: system messages collated into System, every
// message in Messages, and its think option.
type Values struct {
	Messages   []Message
	System     string
	Prompt     string
	Response   string
	Think      bool
	IsThinkSet bool
}

type check struct {
	Template string
	Values   Values
}

type result struct {
	Output string `json:"output"`
	Error  string `json:"error"`
}

func main() {
	var checks []check
	if err := json.NewDecoder(os.Stdin).Decode(&checks); err != nil {
		fmt.Fprintln(os.Stderr, "cannot read the checks:", err)
		os.Exit(2)
	}
	results := make([]result, len(checks))
	for i, c := range checks {
		parsed, err := template.New("chat").Parse(c.Template)
		if err != nil {
			results[i].Error = err.Error()
			continue
		}
		var out strings.Builder
		if err := parsed.Execute(&out, c.Values); err != nil {
			results[i].Error = err.Error()
			continue
		}
		results[i].Output = out.String()
	}
	if err := json.NewEncoder(os.Stdout).Encode(results); err != nil {
		fmt.Fprintln(os.Stderr, "cannot write the results:", err)
		os.Exit(2)
	}
}
