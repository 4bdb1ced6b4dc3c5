// Executes Ollama chat templates with Go's own text/template, as Ollama does.
//
// Reads a JSON list of {"Template": ..., "Values": ...} on stdin and writes a JSON list of
// {"output": ..., "error": ..., "thinking_tags": [...]} on stdout, one per case, so that one
// process checks them all. The thinking tags are what Ollama takes a template's reasoning markers
// to be: the text that opens and closes the list holding {{ .Thinking }} inside the range over
// .Messages (a model whose template has them counts as thinking).
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/template"
	"text/template/parse"
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
	Output       string   `json:"output"`
	Error        string   `json:"error"`
	ThinkingTags []string `json:"thinking_tags"`
}

// thinkingTags walks the parse tree with the list nodes and the range over .Messages that enclose each node.
func thinkingTags(node parse.Node, lists []*parse.ListNode, inMessages bool) []string {
	switch n := node.(type) {
	case *parse.ListNode:
		if n == nil {
			return nil
		}
		for _, child := range n.Nodes {
			if tags := thinkingTags(child, append(lists, n), inMessages); tags != nil {
				return tags
			}
		}
	case *parse.ActionNode:
		if inMessages && len(n.Pipe.Cmds) == 1 && len(n.Pipe.Cmds[0].Args) == 1 {
			if field, ok := n.Pipe.Cmds[0].Args[0].(*parse.FieldNode); ok && field.Ident[0] == "Thinking" {
				list := lists[len(lists)-1]
				return []string{edgeText(list.Nodes[0]), edgeText(list.Nodes[len(list.Nodes)-1])}
			}
		}
	case *parse.IfNode:
		return branchTags(&n.BranchNode, lists, inMessages)
	case *parse.RangeNode:
		messages := strings.Contains(n.Pipe.String(), ".Messages")
		return branchTags(&n.BranchNode, lists, inMessages || messages)
	}
	return nil
}

func branchTags(n *parse.BranchNode, lists []*parse.ListNode, inMessages bool) []string {
	if tags := thinkingTags(n.List, lists, inMessages); tags != nil {
		return tags
	}
	if n.ElseList != nil {
		return thinkingTags(n.ElseList, lists, inMessages)
	}
	return nil
}

func edgeText(node parse.Node) string {
	if text, ok := node.(*parse.TextNode); ok {
		return strings.TrimSpace(string(text.Text))
	}
	return ""
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
		results[i].ThinkingTags = thinkingTags(parsed.Tree.Root, nil, false)
	}
	if err := json.NewEncoder(os.Stdout).Encode(results); err != nil {
		fmt.Fprintln(os.Stderr, "cannot write the results:", err)
		os.Exit(2)
	}
}
