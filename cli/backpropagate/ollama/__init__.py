"""Registering an exported model with Ollama: its HTTP API, templates derived from the tokenizer, a Modelfile."""
