"""The gguf stage: a merged model converted and quantized with the pinned llama.cpp, then verified."""
